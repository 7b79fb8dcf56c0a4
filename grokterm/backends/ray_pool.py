"""The Ray backend: one long-lived Ray actor per worker slot, anywhere on a cluster,
driven from this process, the head, which alone opens runs.db.

For each slot a thread of the head starts the slot's actor (a remote worker,
grokterm.backends.remote), registers it as a worker of the sweep, claims cohorts for
it, sends each with its checkpoint and stored points, and drains what the actor queued
(points, labels, checkpoints, the cohort's end, its output) into the store and the
worker's log every POLL_S, beating for it meanwhile. An actor that dies (killed, its
node gone) hands its cohort back at once, to resume from its newest checkpoint on
another actor, and its slot starts a new one, a bounded number of times."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from grokterm import processes
from grokterm.backends import local
from grokterm.backends.cluster import connect, import_ray
from grokterm.backends.remote import WRITES, Call, RemoteWorker
from grokterm.devices import WorkerSlot
from grokterm.records import Assignment
from grokterm.settings import SECONDS
from grokterm.store import LostCohort, Store
from grokterm.worker import LEASE_S

POLL_S = 0.5  # how often the head drains an actor
START_S = 300.0  # an actor not started by then (no node can take it) is given up
CALL_S = 60.0  # a drain unanswered this long (a node gone silent) is tried again


class RayPool:
    """The Ray actors of one sweep, each driven by a thread of this process."""

    MAX_RESPAWNS = 3  # per slot, as the local pool

    def __init__(self, db: Path, sweep_id: int, slots: list[WorkerSlot], address: str | None):
        self.db, self.sweep_id, self.slots = Path(db).resolve(), sweep_id, slots
        self.address = address
        self.asked = threading.Event()  # stop: checkpoint, hand cohorts back
        self.drivers: list[ActorDriver] = []
        self.starting = True  # until the cluster is joined (the app joins in a thread)
        self.started_s = 0.0  # how long joining the cluster took

    outlives_head = False

    @property
    def log_dir(self) -> Path:
        return local.log_dir(self.db)

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.starting = True
        try:
            self.started_s = connect(self.address, len(self.slots))
        finally:
            self.starting = False
        shares = Counter((s.node, s.device) for s in self.slots)
        self.drivers = [
            ActorDriver(self, i, slot, 1 / shares[slot.node, slot.device])
            for i, slot in enumerate(self.slots)
        ]
        for driver in self.drivers:
            driver.start()

    def check(self) -> None:
        """Nothing to do: each slot's thread replaces its own dead actor."""

    @property
    def stopped(self) -> int:
        return sum(d.end == "stopped" for d in self.drivers)

    def alive(self) -> int:
        """Its slots' threads still running (all of them while the cluster is joined)."""
        return len(self.slots) if self.starting else sum(d.is_alive() for d in self.drivers)

    def stop(self) -> None:
        self.asked.set()

    def wait(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        for driver in self.drivers:
            driver.join(max(deadline - time.monotonic(), 0.1))


class ActorDriver(threading.Thread):
    """One slot: its actor's life and its cohorts, as seen from the head."""

    def __init__(self, pool: RayPool, index: int, slot: WorkerSlot, gpu_share: float):
        super().__init__(name=f"ray-slot-{index}", daemon=True)
        self.pool, self.slot, self.gpu_share = pool, slot, gpu_share
        self.log = pool.log_dir / f"sweep-{pool.sweep_id}-ray-{index}.log"
        self.end: str | None = None  # finished | stopped | failing
        self.ray = import_ray(False)

    def run(self) -> None:
        store = Store(self.pool.db)
        try:
            for _ in range(RayPool.MAX_RESPAWNS + 1):
                started = self._start_actor(store)
                if isinstance(started, str):  # stopped, finished, or no node took it
                    self.end = started
                    return
                if started is not None:  # None: it died starting; try a new one
                    self.end = self._serve(store, *started)
                    if self.end != "lost":
                        return
            self.end = "failing"
        except Exception as err:  # noqa: BLE001  (the head's own fault: say so, end the slot)
            self._write(f"slot ended: {type(err).__name__}: {err}\n")
            self.end = "failing"
        finally:
            store.close()

    # -- an actor's life --------------------------------------------------------------

    def _start_actor(self, store: Store):
        """A new actor for the slot and its worker id; None if it died starting; or why
        the slot ends: "stopped", "finished", or "failing" (no node took it in START_S)."""
        ray, slot = self.ray, self.slot
        cuda = slot.device.startswith("cuda")
        # The head's GROKTERM_* settings (how often to flush, checkpoint) hold on every node.
        settings = {k: v for k, v in os.environ.items() if k in SECONDS}
        options: dict = {"num_cpus": slot.threads, "max_concurrency": 4,
                         "runtime_env": {"env_vars": settings}}  # fmt: skip
        if cuda:  # Ray hands it its GPU as the one it sees: cuda:0
            options |= {"num_cpus": 1, "num_gpus": self.gpu_share}
        if slot.node:  # soft: another node takes it when that one is gone
            strategy = ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy
            options["scheduling_strategy"] = strategy(slot.node, soft=True)
        device = "cuda:0" if cuda else slot.device
        actor = (
            ray.remote(RemoteWorker)
            .options(**options)
            .remote(device, slot.threads, slot.engine, slot.precision)
        )
        ref, deadline = actor.info.remote(), time.monotonic() + START_S
        while not ray.wait([ref], timeout=1.0)[0]:
            if self.pool.asked.is_set() or store.sweep_finished(self.pool.sweep_id):
                ray.kill(actor)
                return "stopped" if self.pool.asked.is_set() else "finished"
            if time.monotonic() > deadline:
                ray.kill(actor)
                self._write(f"no node took this worker in {START_S:.0f} s\n")
                return "failing"
        try:
            info = ray.get(ref)
        except ray.exceptions.RayError as err:
            self._write(f"worker did not start: {_first_line(err)}\n")
            time.sleep(1.0)
            return None
        token = processes.token(os.getpid())  # the head's: the app's x signals it
        worker_id = store.register_worker(self.pool.sweep_id, device, str(self.log), token,
                                          info["machine"], node=info["node"])  # fmt: skip
        self._write(f"worker {worker_id}: actor pid {info['pid']} on {info['node']}\n")
        return actor, worker_id

    def _serve(self, store: Store, actor, worker_id: int) -> str:
        """Claim and train cohorts on the actor: "finished", "stopped", or "lost" (the
        actor died; its cohort went back to the queue)."""
        while not self.pool.asked.is_set():
            job = store.claim_cohort(self.pool.sweep_id, worker_id, self.slot.device, LEASE_S)
            if job is None:
                if store.sweep_finished(self.pool.sweep_id):
                    store.worker_exit(worker_id, "finished")
                    self.ray.kill(actor)
                    return "finished"
                store.beat(worker_id)
                time.sleep(POLL_S)  # others are training; their lease may lapse
                continue
            error = self._train(store, actor, worker_id, job)
            if error is not None:
                store.release_cohort(job.cohort_id, worker_id)  # resumes from its checkpoint
                store.worker_exit(worker_id, "lost", error)
                self._write(f"worker {worker_id} lost: {error}\n")
                self.ray.kill(actor)
                return "lost"
        store.worker_exit(worker_id, "stopped")
        self.ray.kill(actor)
        return "stopped"

    # -- one cohort -------------------------------------------------------------------

    def _train(self, store: Store, actor, worker_id: int, job: Assignment) -> str | None:
        """Train one cohort on the actor, applying its reports as they come. None when
        it ended (done, failed, handed back), else why the actor is gone."""
        ray = self.ray
        checkpoint = store.load_checkpoint(job.cohort_id)
        points = store.run_points([r.id for r in job.runs])
        done = actor.train.remote(worker_id, job, checkpoint, points)
        asked_stop = False
        while True:
            ended = bool(ray.wait([done], timeout=POLL_S)[0])
            try:
                calls, output = ray.get(actor.drain.remote(), timeout=CALL_S)
            except ray.exceptions.GetTimeoutError:
                continue  # silent, not yet known dead: no beat, so its lease can lapse
            except ray.exceptions.RayError as err:
                return _first_line(err)
            self._write(output)
            lost = apply_calls(store, calls, self._write)
            store.beat(worker_id)
            if (lost or self.pool.asked.is_set()) and not asked_stop:
                actor.stop.remote()  # it checkpoints and hands the cohort back
                asked_stop = True
            if ended:
                try:
                    ray.get(done)
                except ray.exceptions.RayError as err:
                    return _first_line(err)
                return None

    def _write(self, text: str) -> None:
        if text:
            with open(self.log, "a") as out:
                out.write(text)


def apply_calls(store: Store, calls: list[Call], note: Callable[[str], None]) -> bool:
    """Make a remote worker's queued store calls, in order; True if its cohort was
    taken over by another worker meanwhile (the head was silent past the lease)."""
    lost = False
    for name, args in calls:
        if name not in WRITES:
            raise ValueError(f"a remote worker asked for {name!r}")
        try:
            final = getattr(store, name)(*args)
        except LostCohort:
            lost = True
            continue
        if name == "fail_cohort" and final:
            note(f"cohort {args[0]} failed for good: {args[2]}\n")
    return lost


def _first_line(err: Exception) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return f"{type(err).__name__}: {lines[0] if lines else ''}"[:300]
