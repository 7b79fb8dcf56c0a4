"""The one sweep lifecycle that the CLI and the app both call: plan a preset on this
machine's workers, open the sweep to resume (or create it), start its workers on a
backend, stop them. No torch, no printing."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from grokterm import gpu_model
from grokterm.backends import BACKENDS, Backend, open_backend
from grokterm.backends.cluster import ClusterError
from grokterm.backends.local import signal_workers
from grokterm.devices import ENGINES, PRECISIONS, WorkerSlot, slots_kind, worker_slots
from grokterm.planning import estimate_seconds, gpu_cohort_cap, gpu_estimate_seconds, plan_on
from grokterm.presets import Preset, PresetError, RunSpec
from grokterm.records import Sweep
from grokterm.store import Store


class SweepError(ValueError):
    """What stops a sweep from being planned or started, as one line for the user."""


@dataclass
class Plan:
    preset: Preset  # at its scale
    scale: str
    specs: list[RunSpec]
    slots: list[WorkerSlot]
    cohorts: list[list[RunSpec]]
    warnings: list[str]  # runs too big for a worker's memory, a CPU estimate past a day
    backend: str = "local"  # where the workers train (BACKENDS)
    address: str | None = None  # the Ray cluster's; None: a local instance

    @property
    def kind(self) -> str:
        return slots_kind(self.slots)


def slots(
    device: str = "auto", workers: int | None = None, preview: bool = False,
    engine: str = "auto", precision: str = "float32", backend: str = "local",
    address: str | None = None,
) -> list[WorkerSlot]:  # fmt: skip
    """The worker slots a sweep plans for and starts on: this machine's, or with the
    Ray backend and an address, the cluster's (joined here to read its nodes)."""
    if backend not in BACKENDS:
        raise SweepError(f"backend: expected one of {', '.join(BACKENDS)}, got {backend!r}")
    if address is not None and backend != "ray":
        raise SweepError("address: a Ray cluster's address needs --backend ray")
    if workers is not None and workers < 1:
        raise SweepError(f"workers: expected a positive integer, got {workers}")
    cores = os.cpu_count() or 1
    if workers is not None and workers > cores and address is None:  # each is a process
        raise SweepError(f"workers: expected at most {cores}, this machine's CPU cores (each "
                         f"worker is a process of its own), got {workers}")  # fmt: skip
    if engine not in ENGINES:
        raise SweepError(f"engine: expected one of {', '.join(ENGINES)}, got {engine!r}")
    try:
        on = _slots_on(backend, address, device, workers, preview)
    except ClusterError as err:
        raise SweepError(f"{'address' if address else 'backend'}: {err}") from None
    except ValueError as err:
        raise SweepError(f"device: {err}") from None
    if engine == "graphs" and slots_kind(on) != "cuda":
        raise SweepError("engine: graphs captures CUDA graphs; it needs a GPU (--device cuda)")
    if precision not in PRECISIONS:
        raise SweepError(f"precision: expected one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "tf32" and slots_kind(on) != "cuda":
        raise SweepError("precision: tf32 is a GPU's matmul mode; it needs --device cuda")
    return [replace(slot, engine=engine, precision=precision) for slot in on]


def _slots_on(backend: str, address: str | None, device: str, workers: int | None,
              preview: bool) -> list[WorkerSlot]:  # fmt: skip
    if backend != "ray":
        return worker_slots(device, workers, preview)
    from grokterm.backends import cluster

    cluster.import_ray(address is None)  # says how to install Ray where it is not
    if address is None:
        return worker_slots(device, workers, preview)  # a local instance: this machine
    cluster.connect(address)  # a dry run too: the plan is the cluster's
    return cluster.cluster_slots(device, workers)


def plan_sweep(
    preset: Preset, scale: str, device: str = "auto", workers: int | None = None,
    cohort_size: int | None = None, preview: bool = False, engine: str = "auto",
    precision: str = "float32", backend: str = "local", address: str | None = None,
) -> Plan:  # fmt: skip
    """The cohorts a preset at a scale trains on this machine's workers (a preview: on
    a GPU even where none is visible). A figure drawn from other sweeps (fig 1) trains
    nothing: SweepError says what to run instead."""
    try:
        at = preset.at_scale(scale)
        if at.is_view:
            raise SweepError(at.view_error())
        specs = at.expand()
    except PresetError as err:
        raise SweepError(str(err)) from None
    on = slots(device, workers, preview, engine, precision, backend, address)
    cohorts, warnings = cohorts_on(specs, on, address, cohort_size)
    return Plan(at, scale, specs, on, cohorts, warnings, backend, address)


def cohorts_on(specs: list[RunSpec], on: list[WorkerSlot], address: str | None = None,
               cohort_size: int | None = None) -> tuple[list[list[RunSpec]], list[str]]:  # fmt: skip
    """The cohorts and warnings of these runs on these workers; this machine's GPUs take
    cohorts as large as their check measured worth it, within the memory it measured a
    step to take (a cluster's GPUs are others)."""
    here_gpu = slots_kind(on) == "cuda" and address is None
    saved = gpu_model.saved() if here_gpu else None
    if saved is None:
        return plan_on(specs, on, cohort_size)
    return plan_on(specs, on, cohort_size, gpu_cohort_cap(saved.saturates), saved.memory_factor)


def estimate(cohorts: list[list[RunSpec]], workers: int, kind: str,
             here: bool = True) -> tuple[float | None, str]:  # fmt: skip
    """A plan's wall time on `workers` of a kind, and what times it: CPU cores the CPU
    model, GPUs the step model gpu_model.step_for gives (`here`: this machine's, not a
    cluster's); None, and why, where there is none."""
    if kind == "cpu":
        return estimate_seconds(cohorts, workers), "the CPU model"
    step, source = gpu_model.step_for(here)
    return (None if step is None else gpu_estimate_seconds(cohorts, workers, step)), source


def open_sweep(store: Store, plan: Plan, fresh: bool = False) -> tuple[Sweep, bool]:
    """The sweep to train: the newest one of exactly these runs, or a new one (always
    with fresh), in one transaction. Returns (sweep, created)."""
    return store.open_sweep(plan.preset, plan.scale, plan.cohorts, fresh)


def find_sweep(store: Store, preset: Preset, scale: str) -> Sweep | None:
    """The sweep a preset file shows: of exactly its runs at that scale, else the newest
    of its name (an edited grid)."""
    at = preset.at_scale(scale)
    return store.find_sweep(at.name, scale, at.digests()) or store.find_sweep(at.name, scale)


def open_workers(db: Path, sweep_id: int, on: list[WorkerSlot], backend: str = "local",
                 address: str | None = None) -> Backend:  # fmt: skip
    """The sweep's workers on a backend, not yet started."""
    try:
        return open_backend(backend, Path(db), sweep_id, on, address)
    except ValueError as err:
        raise SweepError(f"backend: {err}") from None


def start(db: Path, sweep_id: int, on: list[WorkerSlot], backend: str = "local",
          address: str | None = None) -> Backend:  # fmt: skip
    """Start the sweep's workers; they claim its unfinished cohorts."""
    workers = open_workers(db, sweep_id, on, backend, address)
    try:
        workers.start()
    except ValueError as err:  # a Ray cluster that cannot be joined
        raise SweepError(f"{'address' if address else 'backend'}: {err}") from None
    return workers


def stop(store: Store, sweep_id: int, own: Backend | None = None) -> int:
    """Ask every running worker of the sweep to checkpoint and stop, `own`'s (the
    workers this process drives) too; how many were asked."""
    asked = signal_workers(store, sweep_id)
    if own is not None and not own.outlives_head:
        asked += own.alive()
        own.stop()
    return asked
