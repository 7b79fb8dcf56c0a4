"""runs.db: the only package that speaks SQL. It hands out typed records (records.py).

Several worker processes write while the app and the CLI read (connection.py: WAL,
short IMMEDIATE writes). Every write a worker makes for a cohort checks, in the same
transaction, that the worker still owns it. Metric rows are keyed by (run_id, step) and
upserted, so a resumed cohort can re-log a step. Readers (`Store.reader`) run no DDL."""

from __future__ import annotations

import json
import os
import socket
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timezone

from grokterm.records import (
    Assignment,
    Cohort,
    Dynamics,
    MetricPoint,
    Progress,
    Run,
    Sweep,
    SweepCounts,
)
from grokterm.records import Worker as WorkerRecord
from grokterm.series import CORE
from grokterm.store import rows as mapping
from grokterm.store.connection import Connection, StoreError, check_file

__all__ = ["LostCohort", "Store", "StoreError", "check_file"]

RUN_STATUSES = ("done", "diverged", "running", "failed")
VALUE_COLUMNS = ", ".join((*CORE, "extras"))  # a metric row's values, as _columns gives them
MAX_ID = 2**63 - 1  # SQLite's largest integer: a bigger id names no sweep
UPSERT = ", ".join(f"{c} = excluded.{c}" for c in (*CORE, "extras"))


class LostCohort(Exception):
    """Another worker took this cohort over (our heartbeat had lapsed)."""


class Store(Connection):
    # -- sweeps -----------------------------------------------------------------------

    def open_sweep(
        self, preset, scale: str, cohorts: Sequence[Sequence], fresh: bool = False
    ) -> tuple[Sweep, bool]:
        """The newest sweep of exactly this preset's runs, or a new one (always with
        fresh), found or made in one transaction: launches at the same instant end with
        one sweep. Returns (sweep, created)."""
        digests = preset.digests()  # the preset expanded once, before taking the lock
        with self._write():
            found = None if fresh else self.find_sweep(preset.name, scale, digests)
            sweep_id = found.id if found else self._insert_sweep(preset, scale, cohorts, digests[0])
        return self.sweep(sweep_id), found is None

    def _insert_sweep(self, preset, scale: str, cohorts: Sequence[Sequence], digest: str) -> int:
        """A sweep with its cohorts of RunSpecs. Cohorts keep the plan's order (workers
        claim them by id); runs take the preset's order, the order its tables list them in."""
        created = datetime.fromtimestamp(self.clock(), timezone.utc).isoformat(timespec="seconds")
        sweep_id = self.conn.execute(
            "INSERT INTO sweeps (name, title, figure, scale, preset_path, digest, toml, created)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (preset.name, preset.title, preset.figure, scale, preset.path, digest, preset.text,
             created),
        ).lastrowid  # fmt: skip
        rows = []  # (index in the preset, row); a sort by index keeps every row
        for specs in cohorts:
            cohort_id = self.conn.execute(
                "INSERT INTO cohorts (sweep_id, steps) VALUES (?, ?)",
                (sweep_id, specs[0].config.steps),
            ).lastrowid
            for position, s in enumerate(specs):
                config = json.dumps(s.config.to_dict())
                row = (sweep_id, cohort_id, position, s.key, json.dumps(s.grid), config)
                rows.append((s.index, row))
        self.conn.executemany(
            "INSERT INTO runs (sweep_id, cohort_id, position, key, grid, config)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [row for _, row in sorted(rows, key=lambda r: r[0])],
        )
        return sweep_id

    def find_sweep(self, name: str, scale: str, digests: Sequence[str] = ()) -> Sweep | None:
        """The newest sweep of a preset at a scale; of one of these digests when given."""
        sql, params = "SELECT * FROM sweeps WHERE name = ? AND scale = ?", [name, scale]
        if digests:
            sql += f" AND digest IN ({','.join('?' * len(digests))})"
            params += list(digests)
        return mapping.sweep(self._one(sql + " ORDER BY id DESC LIMIT 1", params))

    def sweep(self, ref: str | int | None = None) -> Sweep | None:
        """A sweep by id, or the newest of a name, or the newest of all."""
        if ref is None:
            return mapping.sweep(self._one("SELECT * FROM sweeps ORDER BY id DESC LIMIT 1"))
        if str(ref).isascii() and str(ref).isdigit():  # an id ("²" is a digit, not an id)
            if int(ref) > MAX_ID:
                return None
            return mapping.sweep(self._one("SELECT * FROM sweeps WHERE id = ?", (int(ref),)))
        sql = "SELECT * FROM sweeps WHERE name = ? ORDER BY id DESC LIMIT 1"
        return mapping.sweep(self._one(sql, (ref,)))

    def sweeps(self) -> list[SweepCounts]:
        """Every sweep with its run counts by status."""
        counts = ", ".join(f"COALESCE(SUM(r.status = '{s}'), 0) AS n_{s}" for s in RUN_STATUSES)
        rows = self._rows(
            f"SELECT s.*, COUNT(r.id) AS n_runs, {counts}, COALESCE(MAX(r.step), 0) AS n_step"
            " FROM sweeps s"
            " LEFT JOIN runs r ON r.sweep_id = s.id GROUP BY s.id ORDER BY s.id"
        )
        return [SweepCounts(mapping.sweep(r), r["n_runs"], r["n_done"], r["n_diverged"],
                            r["n_running"], r["n_failed"], r["n_step"]) for r in rows]  # fmt: skip

    def progress(self, sweep_id: int) -> Progress:
        runs = self.conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(status IN ('done', 'diverged', 'failed')), 0),"
            " COALESCE(SUM(status = 'diverged'), 0), COALESCE(SUM(status = 'failed'), 0)"
            " FROM runs WHERE sweep_id = ?", (sweep_id,),
        ).fetchone()  # fmt: skip
        cohorts = self.conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(status IN ('done', 'failed')), 0),"
            " COALESCE(SUM(step), 0), COALESCE(SUM(steps), 0) FROM cohorts WHERE sweep_id = ?",
            (sweep_id,),
        ).fetchone()
        work = self.conn.execute(
            "SELECT COALESCE(SUM(n * CASE WHEN c.status IN ('done', 'failed') THEN c.steps"
            " ELSE c.step END), 0), COALESCE(SUM(n * c.steps), 0) FROM cohorts c JOIN"
            " (SELECT cohort_id, COUNT(*) AS n FROM runs WHERE sweep_id = ? GROUP BY cohort_id)"
            " r ON r.cohort_id = c.id", (sweep_id,),
        ).fetchone()  # fmt: skip
        return Progress(*runs, *cohorts, *work)

    def sweep_finished(self, sweep_id: int) -> bool:
        return self.progress(sweep_id).complete

    # -- the queue --------------------------------------------------------------------

    def claim_cohort(
        self, sweep_id: int, worker_id: int, device: str, lease_s: float
    ) -> Assignment | None:
        """Take the next queued cohort, or one whose worker's heartbeat has lapsed.
        Another worker silent past the lease was killed (a crash, a reboot) and is
        marked lost, so it is no longer shown as running."""
        now = self.clock()
        with self._write():
            self.conn.execute(
                "UPDATE workers SET status = 'lost', cohort_id = NULL WHERE sweep_id = ?"
                " AND status = 'running' AND heartbeat < ? AND id != ?",
                (sweep_id, now - lease_s, worker_id),
            )
            cohort = self._one(
                "SELECT * FROM cohorts WHERE sweep_id = ? AND (status = 'queued'"
                " OR (status = 'running' AND heartbeat < ?)) ORDER BY id LIMIT 1",
                (sweep_id, now - lease_s),
            )
            if cohort is None:
                return None
            self.conn.execute(
                "UPDATE cohorts SET status = 'running', worker_id = ?, heartbeat = ? WHERE id = ?",
                (worker_id, now, cohort["id"]),
            )
            self.conn.execute(
                "UPDATE runs SET status = 'running', device = ? WHERE cohort_id = ? AND status = 'queued'",
                (device, cohort["id"]),
            )
            self.conn.execute(
                "UPDATE workers SET cohort_id = ?, heartbeat = ?, step = ? WHERE id = ?",
                (cohort["id"], now, cohort["step"], worker_id),
            )
        runs = self._rows(
            "SELECT * FROM runs WHERE cohort_id = ? ORDER BY position", (cohort["id"],)
        )
        return Assignment(cohort["id"], sweep_id, cohort["step"], cohort["steps"],
                          cohort["attempts"], [mapping.run(r) for r in runs])  # fmt: skip

    def _owned(self, cohort_id: int, worker_id: int) -> None:
        """Inside a write: raise LostCohort unless the worker owns the cohort."""
        owner = self._one("SELECT worker_id FROM cohorts WHERE id = ?", (cohort_id,))
        if owner is None or owner["worker_id"] != worker_id:
            raise LostCohort(cohort_id)

    def write_progress(
        self,
        cohort_id: int,
        worker_id: int,
        step: int,
        points: Sequence[MetricPoint],
        steps_per_sec: float | None = None,
        labels: dict[int, Dynamics] | None = None,
        diverged: Sequence[int] = (),
    ) -> None:
        """One transaction: upsert metric points, update the runs' latest values,
        labels and divergence, and the cohort's and worker's heartbeat.
        Raises LostCohort, writing nothing, if another worker owns the cohort now."""
        now = self.clock()
        with self._write():
            self._owned(cohort_id, worker_id)
            self.conn.executemany(
                f"INSERT INTO metrics (run_id, step, {VALUE_COLUMNS}) VALUES (?, ?{', ?' * 6})"
                f" ON CONFLICT (run_id, step) DO UPDATE SET {UPSERT}",
                [(p.run_id, p.step, *mapping.columns(p.values)) for p in points],
            )
            latest = {p.run_id: p for p in sorted(points, key=lambda p: p.step)}
            self.conn.executemany(
                f"UPDATE runs SET step = ?, {', '.join(f'{c} = ?' for c in VALUE_COLUMNS.split(', '))}"
                " WHERE id = ?",
                [(p.step, *mapping.columns(p.values), run_id) for run_id, p in latest.items()],
            )
            self.conn.executemany(
                "UPDATE runs SET status = 'diverged' WHERE id = ?", [(i,) for i in diverged]
            )
            self._set_labels(labels or {})
            self.conn.execute(
                "UPDATE cohorts SET heartbeat = ?, step = ? WHERE id = ?", (now, step, cohort_id)
            )
            self.conn.execute(
                "UPDATE workers SET heartbeat = ?, step = ?, steps_per_sec = COALESCE(?, steps_per_sec)"
                " WHERE id = ?",
                (now, step, steps_per_sec, worker_id),
            )

    def load_checkpoint(self, cohort_id: int) -> bytes | None:
        return self.checkpoints.load(cohort_id)  # beside the store: a remote head sends it

    def save_checkpoint(self, cohort_id: int, worker_id: int, data: bytes) -> None:
        """Keep a cohort's saved state, put in place under the write lock only while the
        worker owns the cohort (a stale worker never replaces its new owner's file)."""
        staged = self.checkpoints.stage(cohort_id, data, worker_id)
        try:
            with self._write():
                self._owned(cohort_id, worker_id)
                path = self.checkpoints.commit(staged, cohort_id)
                self.conn.execute(
                    "UPDATE cohorts SET checkpoint = ? WHERE id = ?", (str(path), cohort_id)
                )
        finally:
            staged.unlink(missing_ok=True)

    def discard_checkpoint(self, cohort_id: int, worker_id: int, error: str) -> None:
        """A cohort's state that cannot be loaded: set aside (kept for a look), the error
        recorded for the cohort, so it trains again from the start."""
        with self._write():
            self._owned(cohort_id, worker_id)
            if self.checkpoints.path(cohort_id).exists():
                error += f" (moved to {self.checkpoints.set_aside(cohort_id)})"
            self.conn.execute(
                "UPDATE cohorts SET checkpoint = NULL, error = ? WHERE id = ?", (error, cohort_id)
            )
            self.conn.execute("UPDATE workers SET error = ? WHERE id = ?", (error, worker_id))

    def beat(self, worker_id: int) -> None:
        """A live worker's heartbeat, and its cohort's while it owns one. A worker marked
        lost while it was suspended (a laptop asleep) is running again."""
        now = self.clock()
        with self._write():
            self.conn.execute(
                "UPDATE cohorts SET heartbeat = ? WHERE worker_id = ? AND status = 'running'",
                (now, worker_id),
            )
            self.conn.execute(
                "UPDATE workers SET status = 'running', heartbeat = ? WHERE id = ?",
                (now, worker_id),
            )

    def finish_cohort(self, cohort_id: int, worker_id: int) -> None:
        with self._write():
            if self._end_cohort(cohort_id, worker_id, "done"):
                self.conn.execute("UPDATE cohorts SET checkpoint = NULL WHERE id = ?", (cohort_id,))
                self.checkpoints.remove(cohort_id)

    def release_cohort(self, cohort_id: int, worker_id: int) -> None:
        """Hand a cohort back to the queue (after a checkpoint), e.g. on Ctrl-C."""
        with self._write():
            self._end_cohort(cohort_id, worker_id, "queued")

    def fail_cohort(self, cohort_id: int, worker_id: int, error: str, max_attempts: int) -> bool:
        """Record a worker's error and hand its cohort back for another attempt, or after
        max_attempts mark the cohort and its unfinished runs failed with the error.
        True when it failed for good."""
        with self._write():
            self._owned(cohort_id, worker_id)
            self.conn.execute("UPDATE workers SET error = ? WHERE id = ?", (error, worker_id))
            attempts = self._one("SELECT attempts FROM cohorts WHERE id = ?", (cohort_id,))
            final = attempts["attempts"] + 1 >= max_attempts
            self.conn.execute(
                "UPDATE cohorts SET attempts = attempts + 1, error = ? WHERE id = ?",
                (error, cohort_id),
            )
            self._end_cohort(cohort_id, worker_id, "failed" if final else "queued", error)
        return final

    def _end_cohort(self, cohort_id: int, worker_id: int, status: str, error=None) -> bool:
        """Inside a write: the cohort and its running runs take a status, if the worker
        owns it (one that lost its cohort to another changes none of its runs)."""
        owned = self.conn.execute(
            "UPDATE cohorts SET status = ?, worker_id = NULL WHERE id = ? AND worker_id = ?",
            (status, cohort_id, worker_id),
        ).rowcount
        if owned:
            self.conn.execute(
                "UPDATE runs SET status = ?, error = ? WHERE cohort_id = ? AND status = 'running'",
                (status, error if status == "failed" else None, cohort_id),
            )
        self.conn.execute("UPDATE workers SET cohort_id = NULL WHERE id = ?", (worker_id,))
        return bool(owned)

    # -- workers ----------------------------------------------------------------------

    def register_worker(self, sweep_id: int, device: str, log: str | None = None,
                        token: str | None = None, machine: dict | None = None,
                        node: str | None = None) -> int:  # fmt: skip
        """This process as a worker of the sweep (token: which process it is, to signal;
        machine: what it trains on, grokterm.provenance.machine). A Ray worker is
        registered by the head that drives it, with the node it runs on."""
        now, found = self.clock(), json.dumps(machine) if machine else None
        values = (os.getpid(), socket.gethostname(), device, sweep_id, now, now, log, token,
                  found, node)  # fmt: skip
        with self._write():
            return self.conn.execute(
                "INSERT INTO workers (pid, host, device, sweep_id, status, started, heartbeat, log,"
                " token, machine, node) VALUES (?, ?, ?, ?, 'running', ?, ?, ?, ?, ?, ?)",
                values,
            ).lastrowid

    def machines(self, sweep_id: int) -> dict[str, int]:
        """The machines (provenance JSON) that trained a sweep, each with its workers.
        SELECT *: a store from before machines were recorded, read-only, has no column."""
        rows = self._rows("SELECT * FROM workers WHERE sweep_id = ? ORDER BY id", (sweep_id,))
        return Counter(r["machine"] for r in rows if r.get("machine"))

    def worker_exit(self, worker_id: int, status: str = "exited", error: str | None = None) -> None:
        with self._write():
            self.conn.execute(
                "UPDATE workers SET status = ?, cohort_id = NULL, heartbeat = ?,"
                " error = COALESCE(?, error) WHERE id = ?",
                (status, self.clock(), error, worker_id),
            )

    def workers(self, sweep_id: int) -> list[WorkerRecord]:
        rows = self._rows(
            "SELECT w.*, c.steps AS cohort_steps, (SELECT COUNT(*) FROM runs r"
            " WHERE r.cohort_id = w.cohort_id) AS cohort_runs FROM workers w"
            " LEFT JOIN cohorts c ON c.id = w.cohort_id WHERE w.sweep_id = ? ORDER BY w.id",
            (sweep_id,),
        )
        return [mapping.record(WorkerRecord, r) for r in rows]

    def cohorts(self, sweep_id: int) -> list[Cohort]:
        rows = self._rows("SELECT * FROM cohorts WHERE sweep_id = ? ORDER BY id", (sweep_id,))
        return [mapping.record(Cohort, r) for r in rows]

    # -- labels and reads -------------------------------------------------------------

    def set_labels(self, labels: dict[int, Dynamics]) -> None:
        """Replace runs' labels (run id -> the label and its numbers)."""
        with self._write():
            self._set_labels(labels)

    def _set_labels(self, labels: dict[int, Dynamics]) -> None:
        self.conn.executemany(
            "UPDATE runs SET label = ?, label_info = ? WHERE id = ?",
            [(d.label, json.dumps(d.to_dict()), run_id) for run_id, d in labels.items()],
        )

    def runs(self, sweep_id: int) -> list[Run]:
        rows = self._rows("SELECT * FROM runs WHERE sweep_id = ? ORDER BY id", (sweep_id,))
        return [mapping.run(r) for r in rows]

    def run_points(self, run_ids: Sequence[int], since: int = 0) -> dict[int, list[MetricPoint]]:
        """Stored metric points of the given runs (after a poll's rowid), by run and step."""
        out: dict[int, list[MetricPoint]] = {i: [] for i in run_ids}
        for chunk in range(0, len(run_ids), 500):  # SQLite's limit on parameters
            ids = list(run_ids[chunk : chunk + 500])
            rows = self._rows(
                f"SELECT rowid AS rowid, * FROM metrics WHERE run_id IN ({','.join('?' * len(ids))})"
                " AND rowid > ? ORDER BY run_id, step",
                [*ids, since],
            )
            for r in rows:
                out[r["run_id"]].append(mapping.point(r))
        return out

    def points(self, sweep_id: int) -> list[MetricPoint]:
        """Every metric point of a sweep, by run and step."""
        rows = self._rows(
            "SELECT m.rowid AS rowid, m.* FROM metrics m JOIN runs r ON r.id = m.run_id"
            " WHERE r.sweep_id = ? ORDER BY m.run_id, m.step",
            (sweep_id,),
        )
        return [mapping.point(r) for r in rows]
