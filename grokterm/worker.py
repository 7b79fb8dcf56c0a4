"""The worker: claim a cohort, train it with the engine, report through a sink.

A worker reports only through a small `Sink` (progress points and labels, heartbeat,
checkpoint bytes, finish, release, fail), which the store implements; a remote worker
can send the same calls over another channel to the head, the only writer of runs.db.
It flushes points in batches, saves a checkpoint every so often (after a flush, so no
point is lost), both written in order by a reporter thread (grokterm.reporter), and
heartbeats from a thread for as long as it lives, also during a
long step; a cohort whose worker's heartbeat lapses is taken over by another worker and
resumed from its checkpoint. Any error in a cohort is recorded and the cohort handed
back, up to MAX_ATTEMPTS; then its runs are failed and the worker goes on with the
rest. SIGTERM or SIGINT makes a worker checkpoint, hand its cohort back and exit.
torch is imported when it registers, to record the machine it trains on."""

from __future__ import annotations

import argparse
import io
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Protocol

from grokterm import gpu_model, processes, provenance, settings
from grokterm.labels import dynamics
from grokterm.planning import cohort_seconds
from grokterm.records import Assignment, Dynamics, MetricPoint
from grokterm.reporter import Reporter
from grokterm.store import LostCohort, Store

LEASE_S = settings.seconds("GROKTERM_LEASE_S")  # heartbeat lapse before takeover
FLUSH_S = settings.seconds("GROKTERM_FLUSH_S")  # metric flush and heartbeat
CHECKPOINT_S = settings.seconds("GROKTERM_CHECKPOINT_S")
# Of a worker's time, the most its reporter spends labelling. Labelling is pure Python:
# it holds the GIL that the training thread takes back after each torch op, and a
# launch-bound step (a GPU's, a tiny cohort's) then waits up to 5 ms an op. Measured on
# the CPU (256 runs x 400 points, 184 ms to label): a tiny cohort's 685 steps/s fell to
# 4 while the reporter labelled without a pause. So labels are made as often as keeps
# labelling within this share, and always with a checkpoint and at the end.
LABEL_SHARE = 0.02
POLL_S = 0.5
MAX_ATTEMPTS = 3  # tries of a cohort before its runs are marked failed


class Sink(Protocol):
    """Where a worker's reports go (the store locally; a channel to the head remotely)."""

    def register_worker(self, sweep_id: int, device: str, log: str | None = None,
                        token: str | None = None, machine: dict | None = None) -> int: ...  # fmt: skip
    def claim_cohort(
        self, sweep_id: int, worker_id: int, device: str, lease_s: float
    ) -> Assignment | None: ...
    def run_points(self, run_ids: Sequence[int]) -> dict[int, list[MetricPoint]]: ...
    def load_checkpoint(self, cohort_id: int) -> bytes | None: ...
    def write_progress(self, cohort_id: int, worker_id: int, step: int, points: Sequence[MetricPoint],
                       steps_per_sec: float | None = None, labels: dict[int, Dynamics] | None = None,
                       diverged: Sequence[int] = ()) -> None: ...  # fmt: skip
    def save_checkpoint(self, cohort_id: int, worker_id: int, data: bytes) -> None: ...
    def discard_checkpoint(self, cohort_id: int, worker_id: int, error: str) -> None: ...
    def beat(self, worker_id: int) -> None: ...
    def finish_cohort(self, cohort_id: int, worker_id: int) -> None: ...
    def release_cohort(self, cohort_id: int, worker_id: int) -> None: ...
    def fail_cohort(
        self, cohort_id: int, worker_id: int, error: str, max_attempts: int
    ) -> bool: ...
    def sweep_finished(self, sweep_id: int) -> bool: ...
    def worker_exit(
        self, worker_id: int, status: str = "exited", error: str | None = None
    ) -> None: ...
    def close(self) -> None: ...


@contextmanager
def beating(open_sink: Callable[[], Sink], worker_id: int) -> Iterator[None]:
    """A worker's heartbeats, and its cohort's, from a thread with a sink of its own
    while the main thread waits for work, loads and trains. One step can outlast the
    lease (fig 8's 8-layer d = 1024 model takes about 100 s a step on a CPU core), and
    without beats between steps another worker would take the cohort over and both
    would train it. A killed worker stops beating, so its cohort is taken over and the
    worker is marked lost."""
    stop = threading.Event()

    def beat() -> None:
        sink = open_sink()
        try:
            while not stop.wait(FLUSH_S):
                with suppress(Exception):  # busy past the timeout: beat next time
                    sink.beat(worker_id)
        finally:
            sink.close()

    thread = threading.Thread(target=beat, name="heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


class Worker:
    def __init__(self, sink: Sink, open_sink: Callable[[], Sink], sweep_id: int, device: str,
                 log: str | None = None, engine: str = "auto", precision: str = "float32"):  # fmt: skip
        self.sink, self.open_sink = sink, open_sink
        self.sweep_id, self.device, self.engine = sweep_id, device, engine
        machine = provenance.machine(device, engine, precision)  # imports torch (training does)
        self.id = sink.register_worker(sweep_id, device, log, processes.token(os.getpid()), machine)
        self.stopping = False

    def stop(self, *_) -> None:
        self.stopping = True

    def work(self) -> None:
        """Claim and train cohorts until the sweep is finished or we are told to stop."""
        with beating(self.open_sink, self.id):
            while not self.stopping:
                job = self.sink.claim_cohort(self.sweep_id, self.id, self.device, LEASE_S)
                if job is None:
                    if self.sink.sweep_finished(self.sweep_id):
                        break
                    time.sleep(POLL_S)  # others are training; their lease may lapse
                    continue
                attempt(self, job)
        self.sink.worker_exit(self.id, "stopped" if self.stopping else "finished")


def attempt(worker: Worker, job: Assignment) -> None:
    """Train a claimed cohort; any error is the cohort's, recorded and retried (the
    traceback goes to the worker's output). `worker` is a Worker or the Ray backend's
    remote one: a sink, open_sink (another sink, for the cohort's reporter thread), an
    id, a device, an engine, and `stopping`."""
    try:
        CohortJob(worker, job).run()
    except LostCohort:
        pass  # another worker took it over while we were silent; it carries on
    except Exception as err:  # noqa: BLE001
        traceback.print_exc()
        error = f"{type(err).__name__}: {err}"
        try:
            final = worker.sink.fail_cohort(job.cohort_id, worker.id, error, MAX_ATTEMPTS)
        except LostCohort:
            return
        tries = f"attempt {job.attempts + 1} of {MAX_ATTEMPTS}"
        print(f"cohort {job.cohort_id} failed ({tries}){', for good' if final else ''}: {error}",
              file=sys.stderr, flush=True)  # fmt: skip


def cohort_engine(engine: str, device: str, configs: list) -> str:
    """The engine a cohort trains with: `auto` on a GPU is the one this machine's check
    measured fastest (gpu_model), on a CPU the compiled step for a long cohort."""
    from grokterm.experiment.engines import resolve

    saved = gpu_model.saved() if device.startswith("cuda") else None
    return resolve(engine, device, cohort_seconds(configs), saved and saved.engine)


class CohortJob:
    """One claimed cohort trained to its end, or to a stop: when to flush points and
    labels, when to checkpoint, how fast it goes."""

    def __init__(self, worker: Worker, job: Assignment):
        from grokterm.experiment.trainer import Cohort

        self.worker, self.sink, self.job = worker, worker.sink, job
        self.run_ids = [r.id for r in job.runs]
        configs = [r.config for r in job.runs]
        engine = cohort_engine(worker.engine, worker.device, configs)
        if engine != "eager":
            print(f"cohort {job.cohort_id}: {engine} engine", file=sys.stderr, flush=True)
        self.cohort = Cohort(configs, device=worker.device, engine=engine)
        if (state := self._saved_state()) is not None:
            self.cohort.load_state_dict(state)  # another cohort's: an error of this one
        # Labels so far, across resumes: the stored points up to the state resumed from
        # (points past it, logged before a crash or with a checkpoint file lost, are
        # evaluated again and would be counted twice).
        stored = self.sink.run_points(self.run_ids)
        self.curves = {
            i: [p for p in ps if p.step <= self.cohort.last_eval] for i, ps in stored.items()
        }
        self.buffer: list[MetricPoint] = []
        self.diverged: list[int] = []
        self.unlabelled: set[int] = set()  # runs with points since their label was made
        self.label_s = 0.0  # how long the reporter took to make the last labels
        now = time.monotonic()
        self.flushed, self.saved, self.labelled = now, now, now
        self.rated, self.rated_step = now, self.cohort.step

    def _saved_state(self) -> dict | None:
        """The cohort's checkpoint, read with torch's safe loader. One that cannot be
        read (truncated, corrupt, or carrying code to run) is reported and set aside,
        and the cohort trains from the start, re-logging its points."""
        data = self.sink.load_checkpoint(self.job.cohort_id)
        if data is None:
            return None
        try:
            return _load(data)
        except Exception as err:  # noqa: BLE001  (unpickling raises many kinds)
            error = f"checkpoint not loaded ({type(err).__name__}: {(str(err).splitlines() or [''])[0]})"
            print(f"cohort {self.job.cohort_id}: {error}; training from step 0", file=sys.stderr,
                  flush=True)  # fmt: skip
            self.sink.discard_checkpoint(self.job.cohort_id, self.worker.id, error)
            return None

    def run(self) -> None:
        """Train to the end (then finish) or to a stop (then checkpoint and hand back).
        Flushes and checkpoints are written by a reporter thread with a sink of its own;
        the cohort's end is said only once they are all made."""
        self.reporter = Reporter(self.worker.open_sink)
        try:
            done = self.cohort.train(self.on_metrics, should_stop=self.tick)
            if done:
                self.flush(label=True)
            else:
                self.save()
            self.reporter.wait()
        except Exception:
            if self.reporter.error is None:  # training failed: store what it handed over
                with suppress(Exception):
                    self.reporter.wait()
            raise
        finally:
            self.reporter.close()  # after a write's error: what is queued is dropped
        end = self.sink.finish_cohort if done else self.sink.release_cohort
        end(self.job.cohort_id, self.worker.id)

    def on_metrics(self, rows) -> None:
        for row in rows:
            point = MetricPoint(self.run_ids[row.run], row.step, row.values)
            self.buffer.append(point)
            if row.diverged:
                self.diverged.append(point.run_id)
            else:
                self.curves[point.run_id].append(point)

    def tick(self) -> bool:
        self.reporter.check()  # a write refused (LostCohort) or failed ends the cohort here
        now = time.monotonic()
        if now - self.saved >= CHECKPOINT_S:
            self.save()
        elif now - self.flushed >= FLUSH_S:
            self.flush()
        return self.worker.stopping

    def flush(self, label: bool = False) -> None:
        """Hand the points since the last flush to the reporter, which writes them with,
        when `label` or labelling is due (LABEL_SHARE), the labels of the runs they
        changed since (made there from copies of their curves)."""
        now, step = time.monotonic(), self.cohort.step
        elapsed = now - self.rated  # steps/s over at least half a second: a steady number
        rate = (step - self.rated_step) / elapsed if elapsed > 0.5 else None
        points, diverged = self.buffer, self.diverged
        self.unlabelled.update(p.run_id for p in points)
        curves = {}
        if label or now - self.labelled >= self.label_s / LABEL_SHARE:
            curves = {i: list(self.curves[i]) for i in self.unlabelled}
            self.unlabelled, self.labelled = set(), now
        cohort_id, worker_id = self.job.cohort_id, self.worker.id

        def write(sink: Sink) -> None:
            start = time.perf_counter()
            labels = {i: info for i, curve in curves.items() if (info := dynamics(curve))}
            if curves:
                self.label_s = time.perf_counter() - start  # read by the next flushes
            sink.write_progress(cohort_id, worker_id, step, points, rate, labels, diverged)

        self.reporter.submit(write)
        self.buffer, self.diverged = [], []
        self.flushed = now
        if rate is not None:
            self.rated, self.rated_step = now, step

    def save(self) -> None:
        # Points first, state second: a checkpoint never gets ahead of the stored
        # points. Dying in between resumes from the older state and re-logs. The state
        # is copied here (state_dict), serialized and written by the reporter.
        self.flush(label=True)
        state, cohort_id, worker_id = self.cohort.state_dict(), self.job.cohort_id, self.worker.id
        self.reporter.submit(lambda sink: sink.save_checkpoint(cohort_id, worker_id, _dump(state)))
        self.saved = time.monotonic()


def _dump(state: dict) -> bytes:
    import torch

    data = io.BytesIO()
    torch.save(state, data)
    return data.getvalue()


def _load(data: bytes) -> dict:
    """A saved state, read with torch's safe loader: tensors, numbers, lists, dicts."""
    import torch

    return torch.load(io.BytesIO(data), weights_only=True)


def main(argv: list[str] | None = None) -> int:
    """`python -m grokterm.worker`: one worker process of the local pool."""
    parser = argparse.ArgumentParser(prog="python -m grokterm.worker")
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--sweep", type=int, required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--engine", default="auto", help="the training step (ENGINES)")
    parser.add_argument("--precision", default="float32", help="float32 or tf32 (PRECISIONS)")
    parser.add_argument("--log", help="where this worker's output goes (shown to users)")
    args = parser.parse_args(argv)

    from grokterm.experiment.trainer import configure_torch

    configure_torch(args.threads, tf32=args.precision == "tf32")
    # A stop that comes while the worker registers is held until it can be honoured (it
    # would kill a listed worker, which the pool then counts as a crash and replaces).
    asks = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, asks)
    worker = Worker(Store(args.db), lambda: Store(args.db), args.sweep, args.device, args.log,
                    args.engine, args.precision)  # fmt: skip
    signal.signal(signal.SIGTERM, worker.stop)
    signal.signal(signal.SIGINT, worker.stop)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, asks)
    worker.work()
    return processes.STOPPED_EXIT if worker.stopping else 0


if __name__ == "__main__":
    sys.exit(main())
