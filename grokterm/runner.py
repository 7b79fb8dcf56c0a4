"""The local worker pool: plan cohorts, start worker processes, and the worker loop.

Workers are separate processes in their own session, so they outlive the app, the
CLI and an SSH drop. Each claims a cohort from runs.db, trains it with the engine,
flushes metric rows in batches, saves a checkpoint every so often (after a flush, so
no row is lost) and heartbeats from a thread for as long as it lives, also during a
long step; a cohort whose worker's heartbeat lapses is taken over by another worker and
resumed from its checkpoint. SIGTERM or SIGINT makes a worker checkpoint, hand its
cohort back and exit. This module imports torch only inside
the worker (`work`), so the CLI can plan and supervise without it."""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path

from grokterm.analysis import dynamics
from grokterm.presets import RunSpec
from grokterm.store import LostCohort, Store

LEASE_S = float(os.environ.get("GROKTERM_LEASE_S", 60))  # heartbeat lapse before takeover
FLUSH_S = float(os.environ.get("GROKTERM_FLUSH_S", 2))  # metric flush and heartbeat
CHECKPOINT_S = float(os.environ.get("GROKTERM_CHECKPOINT_S", 30))
POLL_S = 0.5
MAX_COHORT = {"cpu": 8, "cuda": 64}
# Bytes of activations a run keeps for its backward pass, per example, position, layer
# and unit of d, with the backward's own peak: 59 saved (autograd's saved tensors, the
# full-sequence model), 70-100 peak (resident memory of a CPU step at 2-8 layers,
# 2026-11-24). Deep rungs of figs 8 and 10 need tens of GB per run at paper scale.
ACTIVATION_BYTES = 96
GPU_MEMORY_SHARE = 0.85  # of each GPU's memory, for its workers' cohorts


@dataclass
class WorkerSlot:
    device: str
    threads: int
    memory: int | None = None  # bytes a cohort of this worker may take; None: not limited


def plan_cohorts(
    specs: list[RunSpec], workers: int, max_size: int, memory: int | None = None
) -> list[list[RunSpec]]:
    """Group runs that can share a program, sorted by training-set size to keep
    padding small, in chunks small enough that every worker gets work and, given a
    worker's memory, that fit in it. Workers take cohorts in this order, so the
    longest go first and the short ones fill the gaps."""
    size = max(1, min(max_size, math.ceil(len(specs) / max(workers, 1))))
    ordered = sorted(specs, key=lambda s: (s.config.cohort_key(), _examples(s)))
    cohorts = []
    for _, group in groupby(ordered, key=lambda s: s.config.cohort_key()):
        group = list(group)
        k = size if memory is None else max(1, min(size, memory // run_bytes(group[-1])))
        cohorts += [group[i : i + k] for i in range(0, len(group), k)]
    return sorted(cohorts, key=_cohort_seconds, reverse=True)


def run_bytes(spec: RunSpec, examples: int | None = None) -> int:
    """Rough memory one run takes in a training step: float32 parameters, gradient and
    two AdamW moments, the activations kept for backward over its training set
    (padded to `examples` in a cohort), and the logits with their gradient."""
    c, n = spec.config, examples or _examples(spec)
    activations = ACTIVATION_BYTES * n * c.seq_len * c.n_layers * c.d
    return 16 * c.n_params + activations + 16 * n * c.p


def cohort_bytes(cohort: list[RunSpec]) -> int:
    """Rough memory of a cohort's training step: its runs share one model shape and
    are padded to its largest training set."""
    return len(cohort) * run_bytes(cohort[0], max(map(_examples, cohort)))


def memory_warnings(cohorts: list[list[RunSpec]], memory: int | None) -> list[str]:
    """A line for each run that needs more memory than a worker has, even alone."""
    if memory is None:
        return []
    return [f"warning: run {c[0].key} needs about {gib(run_bytes(c[0]))} to train, more "
            f"than the {gib(memory)} a worker has; it may run out of memory"
            for c in cohorts if len(c) == 1 and run_bytes(c[0]) > memory]  # fmt: skip


def gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB"


def _examples(spec: RunSpec) -> int:
    return spec.config.n_train + spec.config.n_mem


def slots_kind(slots: list[WorkerSlot]) -> str:
    """ "cuda" or "cpu": what the planner and the estimate need to know of the workers."""
    return "cuda" if slots[0].device.startswith("cuda") else "cpu"


def plan(
    specs: list[RunSpec], workers: int, kind: str, cohort_size: int | None = None,
    memory: int | None = None,
) -> list[list[RunSpec]]:  # fmt: skip
    """The cohorts a sweep trains on `workers` of a device kind ("cpu" or "cuda"),
    each within a worker's `memory` where given (a run too big for it alone still
    gets a cohort of one). On a GPU batching runs is the speed-up, so cohorts are as
    large as keeps every worker busy and fits. On a CPU a cohort costs the sum of its
    runs (compute-bound), so what matters is balance: the size whose layout on the
    workers finishes soonest (fig 3 quick, 12 runs on 2 cores: cohorts of 4 took 3
    rounds, 1 h 34; of 1, 1 h 09)."""
    if cohort_size or kind != "cpu":
        return plan_cohorts(specs, workers, cohort_size or MAX_COHORT[kind], memory)
    sizes = range(MAX_COHORT["cpu"], 0, -1)
    plans = [plan_cohorts(specs, workers, k, memory) for k in sizes]
    return min(plans, key=lambda cohorts: estimate_seconds(cohorts, workers))


def plan_on(
    specs: list[RunSpec], slots: list[WorkerSlot], cohort_size: int | None = None
) -> tuple[list[list[RunSpec]], list[str]]:
    """The cohorts for these workers (their number, kind and memory), with a warning
    for each run too big for a worker's memory even alone."""
    memory = slots[0].memory
    cohorts = plan(specs, len(slots), slots_kind(slots), cohort_size, memory)
    return cohorts, memory_warnings(cohorts, memory)


def prepare_sweep(
    store: Store, preset, scale: str, cohorts: list[list[RunSpec]], fresh: bool = False
) -> tuple[dict, bool]:
    """The sweep to train: the newest one of this preset, scale and content, or a
    new one (always with fresh). Returns (sweep row, created)."""
    sweep = None if fresh else store.find_sweep(preset.name, scale, preset.digest())
    if sweep is not None:
        return sweep, False
    return store.sweep(store.create_sweep(preset, scale, cohorts)), True


def stop_sweep(store: Store, sweep_id: int) -> int:
    """Ask every running worker of a sweep on this host to checkpoint and stop,
    also ones started by another process (an earlier app, another terminal)."""
    host, asked = socket.gethostname(), 0
    for w in store.workers(sweep_id):
        if w["status"] == "running" and w["host"] == host:
            try:
                os.kill(w["pid"], signal.SIGTERM)
                asked += 1
            except ProcessLookupError:
                store.worker_exit(w["id"], "lost")
    return asked


def estimate_seconds(cohorts: list[list[RunSpec]], workers: int) -> float:
    """Rough CPU wall time of a sweep, fitted to steps measured on one core of a
    2-core machine. A cohort pads every run to its largest training set, so it costs
    its size times its largest run. A worker trains one cohort at a time: the cohorts
    are laid out on the workers, longest first, and the busiest one sets the wall time."""
    loads = [0.0] * max(workers, 1)
    for seconds in sorted(map(_cohort_seconds, cohorts), reverse=True):
        loads[loads.index(min(loads))] += seconds
    return max(loads)


def _cohort_seconds(cohort: list[RunSpec]) -> float:
    return len(cohort) * max(map(_run_seconds, cohort))


def _run_seconds(spec: RunSpec) -> float:
    """A fixed overhead, plus per example a constant (embedding, softmax over p) and a
    cost in d^2 + d * p (the MLP and unembedding). Single task fitted to d=64, n=3000
    (~20 ms a step) and fig 4's memorization runs (n = 12769: ~20 ms at d = 4, ~27 ms at
    d = 16). Multitask (four tokens, two accuracies; n = 2800, p = 59, one thread on
    an idle CPU, 2026-11-23) measured 10, 20, 47, 82, 136 ms at d = 32, 64, 128, 192,
    256; split FFN 11, 24, 52, 91, 146 ms (fig 10 quick's workers: 135 and 145 ms at
    d = 256, two side by side). Deeper models run every position through every layer:
    per example, position and layer a cost in d^2, fitted to fig 8's ladder at paper
    data (n = 6000, 2026-11-24): 3.5, 17.8, 38 s a step at (layers, d) = (2, 256),
    (4, 512), (8, 512)."""
    c = spec.config
    n, size = c.n_train + c.n_mem, c.n_layers * (c.d * c.d + c.d * c.p)
    if c.n_layers > 1:
        return c.steps * (6e-3 + 0.8e-9 * n * c.seq_len * c.n_layers * c.d * c.d)
    if c.task == "multitask":
        return c.steps * (6e-3 + (0.62e-9 if c.split_ffn else 0.58e-9) * n * size)
    return c.steps * (4e-3 + n * (1.08e-6 + 0.376e-9 * size))


def worker_slots(device: str, workers: int | None) -> list[WorkerSlot]:
    """Default: one worker per GPU, else one per CPU core with one thread each.
    Workers on one GPU share its memory (a share of it, for the planner)."""
    gpu = device in ("auto", "cuda") or device.startswith("cuda:")
    gpus = gpu_memory() if gpu else []
    if device == "auto":
        device = "cuda" if gpus else "cpu"
    if device == "cpu":
        return [WorkerSlot("cpu", 1) for _ in range(workers or os.cpu_count() or 1)]
    if not gpu:
        raise ValueError(f"expected auto, cpu, cuda or cuda:I, got {device!r}")
    if not gpus:
        raise ValueError(f"{device} asked for, but no CUDA GPU is visible")
    if device == "cuda":
        indices = [i % len(gpus) for i in range(workers or len(gpus))]
    else:
        index = device.removeprefix("cuda:")
        if not index.isdigit() or int(index) >= len(gpus):
            raise ValueError(f"expected cuda:I with I below {len(gpus)}, got {device!r}")
        indices = [int(index)] * (workers or 1)
    return [
        WorkerSlot(f"cuda:{i}", 1, int(gpus[i] * GPU_MEMORY_SHARE) // indices.count(i))
        for i in indices
    ]


def gpu_memory() -> list[int]:
    """Total memory of each CUDA device, asking torch in a subprocess only where an
    NVIDIA driver exists (the CLI and the app do not import torch)."""
    if not any(Path("/dev").glob("nvidia[0-9]*")):
        return []
    code = (
        "import torch; print(*(torch.cuda.get_device_properties(i).total_memory for i in "
        "range(torch.cuda.device_count() if torch.cuda.is_available() else 0)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    return [int(x) for x in out.stdout.split()]


def start_worker(db: Path, sweep_id: int, slot: WorkerSlot, log: Path) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "grokterm.runner", "--db", str(db), "--sweep", str(sweep_id),
           "--device", slot.device, "--threads", str(slot.threads)]  # fmt: skip
    with open(log, "ab") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


class Pool:
    """The worker processes of one sweep, started and watched by `grokterm run`."""

    MAX_RESPAWNS = 3  # per slot: a worker that keeps dying points at a real bug

    def __init__(self, store: Store, sweep_id: int, slots: list[WorkerSlot]):
        self.store, self.sweep_id, self.slots = store, sweep_id, slots
        self.procs: list[subprocess.Popen | None] = [None] * len(slots)
        self.respawns = [0] * len(slots)

    def log(self, i: int) -> Path:
        return (
            self.store.path.parent
            / f"{self.store.path.name}.logs"
            / f"sweep-{self.sweep_id}-worker-{i}.log"
        )

    def start(self) -> None:
        for i, slot in enumerate(self.slots):
            self.procs[i] = start_worker(self.store.path, self.sweep_id, slot, self.log(i))

    def check(self) -> None:
        """Replace a worker that died while the sweep still has work."""
        for i, proc in enumerate(self.procs):
            if proc is None or proc.poll() is None or self.store.sweep_finished(self.sweep_id):
                continue
            if self.respawns[i] < self.MAX_RESPAWNS:
                self.respawns[i] += 1
                self.procs[i] = start_worker(
                    self.store.path, self.sweep_id, self.slots[i], self.log(i)
                )
            else:
                self.procs[i] = None

    def alive(self) -> int:
        return sum(p is not None and p.poll() is None for p in self.procs)

    def stop(self, timeout: float = 120) -> None:
        """Ask every worker to checkpoint and hand its cohort back, then wait."""
        for p in self.procs:
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
        self.wait(timeout)

    def wait(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        for p in self.procs:
            if p is not None:
                try:
                    p.wait(max(deadline - time.monotonic(), 0.1))
                except subprocess.TimeoutExpired:
                    p.kill()


# -- the worker process ---------------------------------------------------------------


@contextmanager
def beating(db: Path, worker_id: int) -> Iterator[None]:
    """A worker's heartbeats, and its cohort's, from a thread on its own connection
    while the main thread waits for work, loads and trains. One step can outlast the
    lease (fig 8's 8-layer d = 1024 model takes about 100 s a step on a CPU core), and
    without beats between steps another worker would take the cohort over and both
    would train it. A killed worker stops beating, so its cohort is taken over and the
    worker is marked lost."""
    stop = threading.Event()

    def beat() -> None:
        store = Store(db)
        try:
            while not stop.wait(FLUSH_S):
                # busy past the timeout: beat next time
                with suppress(sqlite3.OperationalError):
                    store.beat(worker_id)
        finally:
            store.close()

    thread = threading.Thread(target=beat, name="heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


class Worker:
    def __init__(self, db: Path, sweep_id: int, device: str):
        self.store = Store(db)
        self.sweep_id, self.device = sweep_id, device
        self.id = self.store.register_worker(sweep_id, device)
        self.stopping = False

    def stop(self, *_) -> None:
        self.stopping = True

    def work(self) -> None:
        """Claim and train cohorts until the sweep is finished or we are told to stop."""
        with beating(self.store.path, self.id):
            while not self.stopping:
                cohort = self.store.claim_cohort(self.sweep_id, self.id, self.device, LEASE_S)
                if cohort is None:
                    if self.store.sweep_finished(self.sweep_id):
                        break
                    time.sleep(POLL_S)  # others are training; their lease may lapse
                    continue
                with suppress(LostCohort):
                    self.train(cohort)
        self.store.worker_exit(self.id, "stopped" if self.stopping else "finished")

    def train(self, claim: dict) -> None:
        import torch

        from grokterm.config import RunConfig
        from grokterm.experiment.trainer import Cohort

        run_ids = [r["id"] for r in claim["runs"]]
        configs = [RunConfig.from_dict(json.loads(r["config"])) for r in claim["runs"]]
        cohort = Cohort(configs, device=self.device)
        checkpoint_path = self.store.checkpoint_dir / f"cohort-{claim['id']}.pt"
        if checkpoint_path.exists():
            cohort.load_state_dict(torch.load(checkpoint_path))
        buffer: list[dict] = []
        # Labels so far, across resumes: the stored rows up to the state resumed from
        # (rows past it, logged before a crash or with a checkpoint file lost, are
        # evaluated again and would be counted twice).
        stored = self.store.run_curves(run_ids)
        curves = {
            i: [r for r in rows if r["step"] <= cohort.last_eval] for i, rows in stored.items()
        }
        clock = {"flush": time.monotonic(), "checkpoint": time.monotonic(), "step": cohort.step}

        def on_metrics(rows) -> None:
            for row in rows:
                buffer.append({"run_id": run_ids[row.run], "step": row.step, "train_loss": row.train_loss,
                               "train_acc": row.train_acc, "val_loss": row.val_loss, "val_acc": row.val_acc,
                               "norm": row.norm, "extras": row.extras, "diverged": row.diverged})  # fmt: skip
                if not row.diverged:
                    curves[run_ids[row.run]].append(buffer[-1])

        def flush(checkpoint: str | None = None) -> None:
            now = time.monotonic()
            elapsed = now - clock["flush"]
            rate = (cohort.step - clock["step"]) / elapsed if elapsed > 0.5 else None
            changed = {r["run_id"] for r in buffer}
            labels = {i: info.to_dict() for i in changed if (info := dynamics(curves[i]))}
            self.store.write_progress(
                claim["id"], self.id, cohort.step, buffer, rate, checkpoint, labels
            )
            buffer.clear()
            if rate is not None:
                clock["flush"], clock["step"] = now, cohort.step

        def save() -> None:
            # Rows first, file second: a checkpoint never gets ahead of the stored
            # metrics. Dying in between resumes from the older file and re-logs.
            path = checkpoint_path
            flush(checkpoint=str(path))
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            torch.save(cohort.state_dict(), tmp)
            os.replace(tmp, path)
            clock["checkpoint"] = time.monotonic()

        def tick() -> bool:
            now = time.monotonic()
            if now - clock["checkpoint"] >= CHECKPOINT_S:
                save()
            elif now - clock["flush"] >= FLUSH_S:
                flush()
            return self.stopping

        if cohort.train(on_metrics, should_stop=tick):
            flush()
            self.store.finish_cohort(claim["id"], self.id)
            checkpoint_path.unlink(missing_ok=True)
        else:
            save()
            self.store.release_cohort(claim["id"], self.id)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grokterm.runner")
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--sweep", type=int, required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)

    from grokterm.experiment.trainer import configure_torch

    configure_torch(args.threads)
    worker = Worker(args.db, args.sweep, args.device)
    signal.signal(signal.SIGTERM, worker.stop)
    signal.signal(signal.SIGINT, worker.stop)
    worker.work()
    return 0


if __name__ == "__main__":
    sys.exit(main())
