"""The Ray cluster a sweep trains on: connecting to it (or starting a local instance
sized to this machine) and the worker slots its nodes offer. Ray is imported here, and
only when the Ray backend is chosen."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from pathlib import Path

from grokterm.devices import CPU_MEMORY_SHARE, GPU_MEMORY_SHARE, WorkerSlot

INSTALL = 'the Ray backend needs Ray: pip install -e ".[ray]"'
# Ray binds its servers to the node's address on every interface unless it believes
# clusters are off, when it takes the loopback address: a local instance serves this
# machine only. Read when ray is imported.
LOOPBACK = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


joined_s = 0.0  # how long joining the cluster (or starting the local instance) took
_joining = threading.Lock()
JOIN_S = 120.0  # a cluster that has not let us join by then is said to be unreachable


class ClusterError(ValueError):
    """The Ray cluster cannot be used as asked: one line for the user."""


def import_ray(local: bool):
    """Ray, or ClusterError saying how to install it. A local instance only ever
    listens on loopback (set before Ray is first imported in this process)."""
    if local:  # with Ray's token authentication on; usage statistics sent nowhere
        os.environ.setdefault(LOOPBACK, "0")
        os.environ.setdefault("RAY_AUTH_MODE", "token")
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
    except ImportError:
        raise ClusterError(INSTALL) from None
    return ray


def connect(address: str | None, cpus: int | None = None) -> float:
    """Join the cluster at `address` ("auto": the one `ray start` made on this node),
    or start a local instance: loopback only, no dashboard, `cpus` CPUs. Ray's token
    authentication stays as Ray sets it (on). The seconds joining took (joined_s)."""
    global joined_s
    ray = import_ray(address is None)
    with _joining:
        if ray.is_initialized():
            return joined_s
        where = (
            "start a local Ray instance"
            if address is None
            else f"join the Ray cluster at {address}"
        )
        _check_reachable(address, where)
        start, outcome = time.monotonic(), []
        # In a thread that lives as long as this process: the servers a local instance
        # starts are killed when the thread that started them ends (Linux's parent-death
        # signal follows the thread), and the app joins from a short-lived worker thread.
        keeper = threading.Thread(target=_init, args=(ray, address, cpus, outcome),
                                  name="ray-keeper", daemon=True)  # fmt: skip
        keeper.start()
        while not outcome:
            if time.monotonic() - start > JOIN_S:  # Ray would go on trying
                raise ClusterError(f"cannot {where}: no answer in {JOIN_S:.0f} s")
            time.sleep(0.05)
        if isinstance(outcome[0], Exception):
            first = (str(outcome[0]).strip().splitlines() or [type(outcome[0]).__name__])[0]
            raise ClusterError(f"cannot {where}: {first}")
        joined_s = time.monotonic() - start
    return joined_s


def _check_reachable(address: str | None, where: str) -> None:
    """A HOST:PORT where nothing listens, said at once (Ray retries it for minutes)."""
    host, _, port = (address or "").rpartition(":")
    if not host or not port.isdigit():
        return  # a local instance, or "auto": Ray says at once what it cannot find
    try:
        socket.create_connection((host, int(port)), timeout=10).close()
    except OSError as err:
        raise ClusterError(f"cannot {where}: {err.strerror or err}") from None


def _init(ray, address: str | None, cpus: int | None, outcome: list) -> None:
    common = dict(log_to_driver=False, logging_level=logging.ERROR, configure_logging=True)
    try:
        if address is None:
            ray.init(address="local", num_cpus=cpus, include_dashboard=False, **common)
        else:  # the nodes run this head's grokterm, shipped with the job
            package = str(Path(__file__).resolve().parents[1])
            ray.init(address=address, runtime_env={"py_modules": [package]}, **common)
    except Exception as err:  # noqa: BLE001  (Ray raises many kinds: said in one line)
        outcome.append(err)
        return
    outcome.append(None)
    threading.Event().wait()  # keep the thread, and so the local instance, alive


def cluster_slots(device: str, workers: int | None) -> list[WorkerSlot]:
    """The connected cluster's worker slots: one per GPU of every node with GPUs
    (device auto or cuda), else one per CPU of every node, one thread each; at most
    `workers` of them. Each slot names its node, so its actor is placed there."""
    ray = import_ray(False)
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    gpu_nodes = [n for n in nodes if n["Resources"].get("GPU", 0) >= 1]
    if device == "cuda" and not gpu_nodes:
        raise ClusterError("cuda asked for, but no node of the Ray cluster has a GPU")
    if device not in ("auto", "cpu", "cuda"):
        raise ClusterError(f"expected auto, cpu or cuda on a Ray cluster, got {device!r}")
    use_gpus = bool(gpu_nodes) and device != "cpu"
    slots: list[WorkerSlot] = []
    for node in gpu_nodes if use_gpus else nodes:
        slots += _gpu_slots(ray, node) if use_gpus else _cpu_slots(node)
    if not slots:
        raise ClusterError("the Ray cluster has no CPU or GPU free for workers")
    return slots[:workers] if workers else slots


def _cpu_slots(node: dict) -> list[WorkerSlot]:
    n = int(node["Resources"].get("CPU", 0))
    memory = int(node["Resources"].get("memory", 0) * CPU_MEMORY_SHARE) // max(n, 1) or None
    return [WorkerSlot("cpu", 1, memory, node=node["NodeID"]) for _ in range(n)]


def _gpu_slots(ray, node: dict) -> list[WorkerSlot]:
    """One per GPU, with its memory as the node itself reports it."""
    from grokterm.devices import gpu_memory

    on_node = ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy(node["NodeID"], False)
    probe = ray.remote(gpu_memory).options(num_cpus=0, scheduling_strategy=on_node)
    memories = ray.get(probe.remote(), timeout=120)
    n = int(node["Resources"]["GPU"])
    return [WorkerSlot("cuda:0", 1, int(m * GPU_MEMORY_SHARE), node=node["NodeID"])
            for m in memories[:n]]  # fmt: skip
