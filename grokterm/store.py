"""runs.db: the only module that speaks SQL.

Several worker processes write while the app and the CLI read, so: WAL mode, a long
busy timeout, the schema created before any worker starts, and short write
transactions that begin IMMEDIATE (a deferred one that reads first can fail with
SQLITE_BUSY instead of waiting). Metric rows are keyed by (run_id, step) and upserted,
so a resumed cohort can re-log a step without duplicating it."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import sqlite_utils

BUSY_TIMEOUT_S = 60.0
METRIC_COLUMNS = ("train_loss", "train_acc", "val_loss", "val_acc", "norm")

SCHEMA = """
CREATE TABLE IF NOT EXISTS sweeps (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL, title TEXT, figure TEXT, scale TEXT NOT NULL,
    preset_path TEXT, digest TEXT NOT NULL, toml TEXT NOT NULL, created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cohorts (
    id INTEGER PRIMARY KEY,
    sweep_id INTEGER NOT NULL REFERENCES sweeps(id),
    status TEXT NOT NULL DEFAULT 'queued',          -- queued | running | done
    worker_id INTEGER, heartbeat REAL,
    step INTEGER NOT NULL DEFAULT 0, steps INTEGER NOT NULL,
    checkpoint TEXT                                  -- file of the last saved state
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    sweep_id INTEGER NOT NULL REFERENCES sweeps(id),
    cohort_id INTEGER NOT NULL REFERENCES cohorts(id),
    position INTEGER NOT NULL,                       -- index inside its cohort
    key TEXT NOT NULL, grid TEXT NOT NULL, config TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'queued',           -- queued | running | done | diverged
    device TEXT, step INTEGER NOT NULL DEFAULT 0,
    train_loss REAL, train_acc REAL, val_loss REAL, val_acc REAL, norm REAL,
    label TEXT, label_info TEXT,
    UNIQUE (sweep_id, key)
);
CREATE TABLE IF NOT EXISTS metrics (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    step INTEGER NOT NULL,
    train_loss REAL, train_acc REAL, val_loss REAL, val_acc REAL, norm REAL,
    extras TEXT,                                     -- JSON of further named series
    PRIMARY KEY (run_id, step)
);
CREATE TABLE IF NOT EXISTS workers (
    id INTEGER PRIMARY KEY,
    pid INTEGER, host TEXT, device TEXT, sweep_id INTEGER, cohort_id INTEGER,
    status TEXT, started REAL, heartbeat REAL, step INTEGER, steps_per_sec REAL
);
CREATE INDEX IF NOT EXISTS runs_by_sweep ON runs (sweep_id, cohort_id);
CREATE INDEX IF NOT EXISTS cohorts_by_sweep ON cohorts (sweep_id, status);
"""


class LostCohort(Exception):
    """Another worker took this cohort over (our heartbeat had lapsed)."""


class Store:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        # check_same_thread off: the app reads from thread workers, one at a time
        conn = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        self.db = sqlite_utils.Database(conn)
        self.db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA synchronous = NORMAL")
        with self._write():
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    self.db.execute(statement)

    def close(self) -> None:
        self.db.conn.close()

    @property
    def checkpoint_dir(self) -> Path:
        return self.path.parent / f"{self.path.name}.checkpoints"

    @contextmanager
    def _write(self) -> Iterator[None]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _rows(self, sql: str, params: Sequence = ()) -> list[dict]:
        return list(self.db.query(sql, params))

    # -- sweeps -----------------------------------------------------------------------

    def create_sweep(self, preset, scale: str, cohorts: Sequence[Sequence]) -> int:
        """Store a sweep with its cohorts of RunSpecs, in one transaction. Cohorts keep
        the plan's order (workers claim them by id); runs take the preset's order, the
        order its tables list them in."""
        with self._write():
            sweep_id = self.db.execute(
                "INSERT INTO sweeps (name, title, figure, scale, preset_path, digest, toml, created)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (preset.name, preset.title, preset.figure, scale, preset.path, preset.digest(),
                 preset.text, datetime.now(timezone.utc).isoformat(timespec="seconds")),
            ).lastrowid  # fmt: skip
            rows = []  # (index in the preset, row); a sort by index keeps every row
            for specs in cohorts:
                cohort_id = self.db.execute(
                    "INSERT INTO cohorts (sweep_id, steps) VALUES (?, ?)",
                    (sweep_id, specs[0].config.steps),
                ).lastrowid
                for position, s in enumerate(specs):
                    config = json.dumps(s.config.to_dict())
                    row = (sweep_id, cohort_id, position, s.key, json.dumps(s.grid), config)
                    rows.append((s.index, row))
            self.db.conn.executemany(
                "INSERT INTO runs (sweep_id, cohort_id, position, key, grid, config)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [row for _, row in sorted(rows, key=lambda r: r[0])],
            )
        return sweep_id

    def find_sweep(self, name: str, scale: str, digest: str | None = None) -> dict | None:
        """The newest sweep of a preset at a scale; of exactly this text when digest is given."""
        sql, params = "SELECT * FROM sweeps WHERE name = ? AND scale = ?", [name, scale]
        if digest is not None:
            sql, params = sql + " AND digest = ?", params + [digest]
        rows = self._rows(sql + " ORDER BY id DESC LIMIT 1", tuple(params))
        return rows[0] if rows else None

    def sweep(self, ref: str | int | None = None) -> dict | None:
        """A sweep by id, or the newest of a name, or the newest of all."""
        if ref is None:
            rows = self._rows("SELECT * FROM sweeps ORDER BY id DESC LIMIT 1")
        elif str(ref).isdigit():
            rows = self._rows("SELECT * FROM sweeps WHERE id = ?", (int(ref),))
        else:
            rows = self._rows(
                "SELECT * FROM sweeps WHERE name = ? ORDER BY id DESC LIMIT 1", (ref,)
            )
        return rows[0] if rows else None

    def sweeps(self) -> list[dict]:
        """Every sweep with its run counts by status."""
        return self._rows(
            "SELECT s.*, COUNT(r.id) AS runs,"
            " SUM(r.status = 'done') AS done, SUM(r.status = 'diverged') AS diverged,"
            " SUM(r.status = 'running') AS running"
            " FROM sweeps s LEFT JOIN runs r ON r.sweep_id = s.id GROUP BY s.id ORDER BY s.id"
        )

    def progress(self, sweep_id: int) -> dict:
        row = self._rows(
            "SELECT COUNT(*) AS runs, COALESCE(SUM(status IN ('done', 'diverged')), 0) AS finished,"
            " COALESCE(SUM(status = 'diverged'), 0) AS diverged FROM runs WHERE sweep_id = ?",
            (sweep_id,),
        )[0]
        cohorts = self._rows(
            "SELECT COUNT(*) AS total, COALESCE(SUM(status = 'done'), 0) AS done,"
            " COALESCE(SUM(step), 0) AS steps_done, COALESCE(SUM(steps), 0) AS steps"
            " FROM cohorts WHERE sweep_id = ?",
            (sweep_id,),
        )[0]
        return row | {"cohorts": cohorts["total"], "cohorts_done": cohorts["done"]}

    def sweep_finished(self, sweep_id: int) -> bool:
        p = self.progress(sweep_id)
        return p["cohorts_done"] == p["cohorts"]

    # -- the queue --------------------------------------------------------------------

    def claim_cohort(
        self, sweep_id: int, worker_id: int, device: str, lease_s: float
    ) -> dict | None:
        """Take the next queued cohort, or one whose worker's heartbeat has lapsed.
        Another worker silent past the lease was killed (a crash, a reboot) and is
        marked lost, so it is no longer shown as running."""
        now = time.time()
        with self._write():
            self.db.execute(
                "UPDATE workers SET status = 'lost', cohort_id = NULL WHERE sweep_id = ?"
                " AND status = 'running' AND heartbeat < ? AND id != ?",
                (sweep_id, now - lease_s, worker_id),
            )
            rows = self._rows(
                "SELECT * FROM cohorts WHERE sweep_id = ? AND (status = 'queued'"
                " OR (status = 'running' AND heartbeat < ?)) ORDER BY id LIMIT 1",
                (sweep_id, now - lease_s),
            )
            if not rows:
                return None
            cohort = rows[0]
            self.db.execute(
                "UPDATE cohorts SET status = 'running', worker_id = ?, heartbeat = ? WHERE id = ?",
                (worker_id, now, cohort["id"]),
            )
            self.db.execute(
                "UPDATE runs SET status = 'running', device = ? WHERE cohort_id = ? AND status = 'queued'",
                (device, cohort["id"]),
            )
            self.db.execute(
                "UPDATE workers SET cohort_id = ?, heartbeat = ?, step = ? WHERE id = ?",
                (cohort["id"], now, cohort["step"], worker_id),
            )
        cohort["runs"] = self._rows(
            "SELECT id, position, key, config, status FROM runs WHERE cohort_id = ? ORDER BY position",
            (cohort["id"],),
        )
        return cohort

    def write_progress(
        self,
        cohort_id: int,
        worker_id: int,
        step: int,
        rows: Sequence[dict],
        steps_per_sec: float | None = None,
        checkpoint: str | None = None,
        labels: dict[int, dict] | None = None,
    ) -> None:
        """One transaction: upsert metric rows (dicts with run_id, step, metrics,
        extras, diverged), update the runs' latest values and labels (run_id ->
        analysis.Dynamics as a dict) and the cohort's heartbeat.
        Raises LostCohort, writing nothing, if another worker owns the cohort now."""
        now = time.time()
        with self._write():
            owner = self._rows("SELECT worker_id FROM cohorts WHERE id = ?", (cohort_id,))
            if not owner or owner[0]["worker_id"] != worker_id:
                raise LostCohort(cohort_id)
            self.db.conn.executemany(
                "INSERT INTO metrics (run_id, step, train_loss, train_acc, val_loss, val_acc, norm, extras)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, step) DO UPDATE SET"
                " train_loss = excluded.train_loss, train_acc = excluded.train_acc,"
                " val_loss = excluded.val_loss, val_acc = excluded.val_acc,"
                " norm = excluded.norm, extras = excluded.extras",
                [(r["run_id"], r["step"], *(_finite_or_none(r[c]) for c in METRIC_COLUMNS),
                  json.dumps(r["extras"]) if r["extras"] else None) for r in rows],
            )  # fmt: skip
            latest = {r["run_id"]: r for r in sorted(rows, key=lambda r: r["step"])}
            for run_id, r in latest.items():
                self.db.execute(
                    "UPDATE runs SET step = ?, train_loss = ?, train_acc = ?, val_loss = ?,"
                    " val_acc = ?, norm = ?, status = CASE WHEN ? THEN 'diverged' ELSE status END"
                    " WHERE id = ?",
                    (r["step"], *(_finite_or_none(r[c]) for c in METRIC_COLUMNS),
                     bool(r.get("diverged")), run_id),
                )  # fmt: skip
            for run_id, info in (labels or {}).items():
                self.db.execute(
                    "UPDATE runs SET label = ?, label_info = ? WHERE id = ?",
                    (info["label"], json.dumps(info), run_id),
                )
            ckpt_sql, ckpt_args = (", checkpoint = ?", (checkpoint,)) if checkpoint else ("", ())
            self.db.execute(
                f"UPDATE cohorts SET heartbeat = ?, step = ?{ckpt_sql} WHERE id = ?",
                (now, step, *ckpt_args, cohort_id),
            )
            self.db.execute(
                "UPDATE workers SET heartbeat = ?, step = ?, steps_per_sec = COALESCE(?, steps_per_sec)"
                " WHERE id = ?",
                (now, step, steps_per_sec, worker_id),
            )

    def beat(self, worker_id: int) -> None:
        """A live worker's heartbeat, and its cohort's while it owns one. A worker marked
        lost while it was suspended (a laptop asleep) is running again."""
        now = time.time()
        with self._write():
            self.db.execute(
                "UPDATE cohorts SET heartbeat = ? WHERE worker_id = ? AND status = 'running'",
                (now, worker_id),
            )
            self.db.execute(
                "UPDATE workers SET status = 'running', heartbeat = ? WHERE id = ?",
                (now, worker_id),
            )

    def finish_cohort(self, cohort_id: int, worker_id: int) -> None:
        with self._write():
            self.db.execute(
                "UPDATE cohorts SET status = 'done', checkpoint = NULL WHERE id = ? AND worker_id = ?",
                (cohort_id, worker_id),
            )
            self.db.execute(
                "UPDATE runs SET status = 'done' WHERE cohort_id = ? AND status = 'running'",
                (cohort_id,),
            )
            self.db.execute("UPDATE workers SET cohort_id = NULL WHERE id = ?", (worker_id,))

    def release_cohort(self, cohort_id: int, worker_id: int) -> None:
        """Hand a cohort back to the queue (after a checkpoint), e.g. on Ctrl-C."""
        with self._write():
            self.db.execute(
                "UPDATE cohorts SET status = 'queued', worker_id = NULL WHERE id = ? AND worker_id = ?",
                (cohort_id, worker_id),
            )
            self.db.execute(
                "UPDATE runs SET status = 'queued' WHERE cohort_id = ? AND status = 'running'",
                (cohort_id,),
            )
            self.db.execute("UPDATE workers SET cohort_id = NULL WHERE id = ?", (worker_id,))

    # -- workers ----------------------------------------------------------------------

    def register_worker(self, sweep_id: int, device: str) -> int:
        now = time.time()
        with self._write():
            return self.db.execute(
                "INSERT INTO workers (pid, host, device, sweep_id, status, started, heartbeat)"
                " VALUES (?, ?, ?, ?, 'running', ?, ?)",
                (os.getpid(), socket.gethostname(), device, sweep_id, now, now),
            ).lastrowid

    def set_labels(self, labels: dict[int, dict]) -> None:
        """Replace runs' labels (run id -> the label's numbers, with "label")."""
        with self._write():
            self.db.conn.executemany(
                "UPDATE runs SET label = ?, label_info = ? WHERE id = ?",
                [(info["label"], json.dumps(info), run_id) for run_id, info in labels.items()],
            )

    def worker_exit(self, worker_id: int, status: str = "exited") -> None:
        with self._write():
            self.db.execute(
                "UPDATE workers SET status = ?, cohort_id = NULL, heartbeat = ? WHERE id = ?",
                (status, time.time(), worker_id),
            )

    def workers(self, sweep_id: int) -> list[dict]:
        return self._rows(
            "SELECT w.*, c.steps AS cohort_steps, (SELECT COUNT(*) FROM runs r"
            " WHERE r.cohort_id = w.cohort_id) AS cohort_runs FROM workers w"
            " LEFT JOIN cohorts c ON c.id = w.cohort_id WHERE w.sweep_id = ? ORDER BY w.id",
            (sweep_id,),
        )

    # -- reads ------------------------------------------------------------------------

    def runs(self, sweep_id: int) -> list[dict]:
        rows = self._rows("SELECT * FROM runs WHERE sweep_id = ? ORDER BY id", (sweep_id,))
        for r in rows:
            r["grid"], r["config"] = json.loads(r["grid"]), json.loads(r["config"])
            r["label_info"] = json.loads(r["label_info"]) if r["label_info"] else {}
        return rows

    def run_curves(self, run_ids: Sequence[int]) -> dict[int, list[dict]]:
        """Stored metric rows of the given runs, by run, in step order."""
        marks = ",".join("?" * len(run_ids))
        rows = self._rows(
            f"SELECT * FROM metrics WHERE run_id IN ({marks}) ORDER BY run_id, step", list(run_ids)
        )
        out: dict[int, list[dict]] = {i: [] for i in run_ids}
        for r in rows:
            out[r["run_id"]].append(r)
        return out

    def run_metrics_since(self, run_ids: Sequence[int], since_rowid: int = 0) -> list[dict]:
        """Metric rows of the given runs written after since_rowid (a poll's cursor)."""
        marks = ",".join("?" * len(run_ids))
        return self._rows(
            f"SELECT rowid AS rowid, run_id, step, train_acc, val_acc, norm FROM metrics"
            f" WHERE run_id IN ({marks}) AND rowid > ? ORDER BY run_id, step",
            [*run_ids, since_rowid],
        )

    def metrics(self, sweep_id: int, since_rowid: int = 0) -> list[dict]:
        """Metric rows of a sweep with rowid > since_rowid, oldest first."""
        rows = self._rows(
            "SELECT m.rowid AS rowid, m.* FROM metrics m JOIN runs r ON r.id = m.run_id"
            " WHERE r.sweep_id = ? AND m.rowid > ? ORDER BY m.run_id, m.step",
            (sweep_id, since_rowid),
        )
        for r in rows:
            r["extras"] = json.loads(r["extras"]) if r["extras"] else {}
        return rows


def _finite_or_none(value):
    """NaN and infinity are stored as NULL (SQLite has no NaN)."""
    if value is None or value != value or value in (float("inf"), float("-inf")):
        return None
    return value
