"""The connection to runs.db that the store is built on: WAL, a long busy timeout, the
schema (and the columns added since) created before any worker starts, and write
transactions that begin IMMEDIATE (a deferred one that reads first can fail with
SQLITE_BUSY instead of waiting), waiting on with backoff past the timeout."""

from __future__ import annotations

import itertools
import os
import sqlite3
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from grokterm.checkpoints import Checkpoints

BUSY_TIMEOUT_S = float(os.environ.get("GROKTERM_BUSY_TIMEOUT_S", 60))

SCHEMA = (Path(__file__).parent / "schema.sql").read_text()
# Columns added since the first schema; a store made before gets them on first write.
ADDED = {
    "cohorts": {"attempts": "INTEGER NOT NULL DEFAULT 0", "error": "TEXT"},
    "runs": {"extras": "TEXT", "error": "TEXT"},  # runs.extras: latest non-core series
    "workers": {"error": "TEXT", "log": "TEXT", "token": "TEXT"},  # token: processes.token
}


class Connection:
    def __init__(self, path: str | Path, create: bool = True, clock=time.time):
        self.path, self.clock = Path(path), clock  # clock: seconds since the epoch
        self.checkpoints = Checkpoints(self.path.parent / f"{self.path.name}.checkpoints")
        self.conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        if create:
            self._wal()
            self.conn.execute("PRAGMA synchronous = NORMAL")
            with self._write():
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        self.conn.execute(statement)
                self._add_columns()

    def _wal(self) -> None:
        """Switch a new store to WAL. The switch takes no busy timeout: several processes
        opening a new store at once (two launches, a pool's workers) wait their turn."""
        for attempt in itertools.count():
            try:
                self.conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as err:
                if "locked" not in str(err) or attempt * 0.05 > BUSY_TIMEOUT_S:
                    raise
                time.sleep(0.05)

    @classmethod
    def reader(cls, path: str | Path):  # one per thread: WAL lets readers run together
        return cls(path, create=False)

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def _write(self) -> Iterator[None]:
        self._begin()
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def _begin(self) -> None:
        """Take the write lock. Held past the busy timeout by another process (a frozen
        writer, a user's sqlite3 shell), it is waited for with backoff, said each time."""
        start = time.monotonic()
        for attempt in itertools.count():
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as err:
                if "locked" not in str(err) and "busy" not in str(err):
                    raise
                print(f"{self.path}: locked by another process for {time.monotonic() - start:.0f}"
                      " s; waiting for it", file=sys.stderr, flush=True)  # fmt: skip
                time.sleep(min(5.0, 0.1 * 2**attempt))

    def _add_columns(self) -> None:
        for table, columns in ADDED.items():
            have = {r["name"] for r in self.conn.execute(f"PRAGMA table_info({table})")}
            for name, kind in columns.items():
                if name not in have:
                    self.conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")

    def _rows(self, sql: str, params: Sequence = ()) -> list[dict]:
        return [dict(r) for r in self.conn.execute(sql, params)]

    def _one(self, sql: str, params: Sequence = ()) -> dict | None:
        rows = self._rows(sql, params)
        return rows[0] if rows else None
