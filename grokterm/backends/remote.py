"""The Ray backend's remote worker: one Ray actor per worker slot, on any node of the
cluster, training the cohorts the head hands it with the same engine and the same
cohort loop as a local worker (grokterm.worker). It never opens runs.db: what a cohort
reads (its stored points, its checkpoint) comes with the cohort, and what it writes
(points, labels, checkpoints, the cohort's end) queues up as calls the head makes on
the store when it drains them, with the worker's output for its log.

Plain Python with no Ray in it: the head wraps the class with `ray.remote`, and the
tests can drive it in-process."""

from __future__ import annotations

import io
import os
import socket
import sys
import threading
from collections.abc import Sequence

from grokterm import provenance
from grokterm.records import Assignment, MetricPoint
from grokterm.worker import attempt

# The Sink calls a cohort makes that change the store: queued, made by the head.
WRITES = frozenset(
    {"write_progress", "save_checkpoint", "discard_checkpoint", "finish_cohort",
     "release_cohort", "fail_cohort"}
)  # fmt: skip
Call = tuple[str, tuple]


class QueuedSink:
    """The part of a worker's Sink that a cohort uses, for a worker away from runs.db:
    reads answered from what the head sent, writes queued in order for the head."""

    def __init__(self, points: dict[int, list[MetricPoint]], checkpoint: bytes | None):
        self.points, self.checkpoint = points, checkpoint
        self.calls: list[Call] = []
        self.lock = threading.Lock()

    def run_points(self, run_ids: Sequence[int]) -> dict[int, list[MetricPoint]]:
        return {i: list(self.points.get(i, [])) for i in run_ids}

    def load_checkpoint(self, cohort_id: int) -> bytes | None:
        return self.checkpoint

    def __getattr__(self, name: str):
        if name not in WRITES:
            raise AttributeError(name)

        def queue(*args) -> None:  # fail_cohort's "for good" is the head's to say
            with self.lock:
                self.calls.append((name, args))

        return queue

    def close(self) -> None:
        """Nothing to close: the head drains what is queued."""

    def take(self) -> list[Call]:
        with self.lock:
            calls, self.calls = self.calls, []
        return calls


class Output(io.TextIOBase):
    """The worker's stdout and stderr (progress lines, a failed cohort's traceback),
    kept until the head drains them into the worker's log beside runs.db."""

    def __init__(self):
        self.parts: list[str] = []
        self.lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self.lock:
            self.parts.append(text)
        return len(text)

    def take(self) -> str:
        with self.lock:
            text, self.parts = "".join(self.parts), []
        return text


class RemoteWorker:
    """One worker slot's process on a node: train() runs one cohort to its end or to a
    stop, while drain() and stop() come in on the actor's other threads."""

    def __init__(self, device: str, threads: int, engine: str, precision: str,
                 capture: bool = True):  # fmt: skip
        self.output = Output()
        if capture:  # the actor's process is its own: all its output is the worker's
            sys.stdout = sys.stderr = self.output
        self.device, self.engine, self.threads = device, engine, threads
        self.tf32 = precision == "tf32"
        self._configure()
        self.machine = provenance.machine(device, engine, precision)
        self.id: int | None = None  # the head's worker id for it, given with each cohort
        self.sink = QueuedSink({}, None)
        self.stopping = False

    def _configure(self) -> None:
        # Per process and, for the denormal flag, per thread: each cohort's thread too.
        from grokterm.experiment.trainer import configure_torch

        configure_torch(self.threads, tf32=self.tf32)

    def info(self) -> dict:
        """What the head records of this worker: the machine and where it runs."""
        return {"machine": self.machine, "node": _node(), "pid": os.getpid()}

    def train(self, worker_id: int, job: Assignment, checkpoint: bytes | None,
              points: dict[int, list[MetricPoint]]) -> None:  # fmt: skip
        """One cohort, resumed from `checkpoint` (with its stored points) if any."""
        self._configure()
        self.id, self.stopping = worker_id, False
        self.sink = QueuedSink(points, checkpoint)
        attempt(self, job)
        sys.stderr.flush()

    def open_sink(self) -> QueuedSink:
        """The sink of a cohort's reporter thread: the same queue (it takes a lock)."""
        return self.sink

    def drain(self) -> tuple[list[Call], str]:
        """The store calls queued since the last drain, and the output."""
        return self.sink.take(), self.output.take()

    def stop(self) -> None:
        """Checkpoint and hand the cohort back at the next step."""
        self.stopping = True


def _node() -> str:
    """This node as a user knows it: host name and the start of Ray's node id."""
    host = socket.gethostname()
    try:
        import ray

        return f"{host}/{ray.get_runtime_context().get_node_id()[:8]}"
    except Exception:  # noqa: BLE001  (not in a Ray worker: the tests)
        return host
