"""The local backend: one worker process per slot on this machine.

Workers are separate processes in their own session, so they outlive the app, the
CLI and an SSH drop; each writes to runs.db itself (WAL, short transactions)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import closing, suppress
from pathlib import Path

from grokterm import processes
from grokterm.devices import WorkerSlot
from grokterm.store import Store


def log_dir(db: Path) -> Path:
    return db.parent / f"{db.name}.logs"


def start_worker(db: Path, sweep_id: int, slot: WorkerSlot, log: Path) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "grokterm.worker", "--db", str(db), "--sweep", str(sweep_id),
           "--device", slot.device, "--threads", str(slot.threads), "--engine", slot.engine, "--precision", slot.precision, "--log", str(log)]  # fmt: skip
    with open(log, "ab") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


class LocalPool:
    """The worker processes of one sweep, started and watched by this process."""

    MAX_RESPAWNS = 3  # per slot: a worker process that keeps dying points at a real bug

    def __init__(self, db: Path, sweep_id: int, slots: list[WorkerSlot]):
        self.db, self.sweep_id, self.slots = (
            Path(db).resolve(),
            sweep_id,
            slots,
        )  # logs shown anywhere
        self.procs: list[subprocess.Popen | None] = [None] * len(slots)
        self.respawns = [0] * len(slots)
        self.stopped = 0  # workers that stopped when asked (by us, the app's x, anyone)

    outlives_head = True

    @property
    def log_dir(self) -> Path:
        return log_dir(self.db)

    def log(self, i: int) -> Path:
        return self.log_dir / f"sweep-{self.sweep_id}-worker-{i}.log"

    def start(self) -> None:
        for i, slot in enumerate(self.slots):
            self.procs[i] = start_worker(self.db, self.sweep_id, slot, self.log(i))

    def check(self) -> None:
        dead = [i for i, p in enumerate(self.procs) if p is not None and p.poll() is not None]
        if not dead:
            return
        with closing(Store.reader(self.db)) as store:
            finished = store.sweep_finished(self.sweep_id)
        for i in dead:
            if self.procs[i].returncode == processes.STOPPED_EXIT:
                self.stopped += 1  # a clean stop stays stopped
                self.procs[i] = None
                continue
            if finished or self.respawns[i] >= self.MAX_RESPAWNS:
                self.procs[i] = None
                continue
            self.respawns[i] += 1
            self.procs[i] = start_worker(self.db, self.sweep_id, self.slots[i], self.log(i))

    def alive(self) -> int:
        return sum(p is not None and p.poll() is None for p in self.procs)

    def stop(self) -> None:
        for p in self.procs:
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        for p in self.procs:
            if p is not None:
                try:
                    p.wait(max(deadline - time.monotonic(), 0.1))
                except subprocess.TimeoutExpired:
                    p.kill()


def signal_workers(store: Store, sweep_id: int) -> int:
    """Ask every running worker of a sweep on this host to checkpoint and stop, also
    ones started by another process (an earlier app, another terminal). Only a process
    proven to be that worker is signalled: its token must match the live process's (a
    PID from the database alone may be anyone's after a crash or a reboot). A worker
    whose process is gone is marked lost."""
    host, asked = socket.gethostname(), 0
    for w in store.workers(sweep_id):
        if w.status != "running" or w.host != host or w.pid == os.getpid():
            continue  # this process's own (a Ray backend's) it stops itself
        live = processes.token(w.pid)
        if live is None or w.token is None or live != w.token:
            store.worker_exit(w.id, "lost")  # gone, or its PID is another process's now
            continue
        with suppress(ProcessLookupError):
            os.kill(w.pid, signal.SIGTERM)
            asked += 1
    return asked
