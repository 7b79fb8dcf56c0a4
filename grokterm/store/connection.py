"""The connection to runs.db that the store is built on: WAL, a long busy timeout, the
schema (and the columns added since) created before any worker starts, and write
transactions that begin IMMEDIATE (a deferred one that reads first can fail with
SQLITE_BUSY instead of waiting), waiting on with backoff past the timeout.

Opening checks the file first, so that a store which cannot be used as asked (not a
database, damaged, from a newer grokterm, read-only, in a missing folder) is refused
with one line and left as it was. A reader never writes: it opens the file read-only."""

from __future__ import annotations

import itertools
import os
import sqlite3
import sys
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from grokterm import settings
from grokterm.checkpoints import Checkpoints

SCHEMA = (Path(__file__).parent / "schema.sql").read_text()
# PRAGMA user_version of the stores this code makes; 0: made before it was recorded
# (the same tables). A store of a higher version is refused, never modified.
SCHEMA_VERSION = 1
# Columns added since the first schema; a store made before gets them on first write.
ADDED = {
    "cohorts": {"attempts": "INTEGER NOT NULL DEFAULT 0", "error": "TEXT"},
    "runs": {"extras": "TEXT", "error": "TEXT"},  # runs.extras: latest non-core series
    # token: processes.token; machine: grokterm.provenance's JSON; node: a Ray node
    "workers": {"error": "TEXT", "log": "TEXT", "token": "TEXT", "machine": "TEXT", "node": "TEXT"},
}


class StoreError(Exception):
    """runs.db cannot be used as asked: one line naming the file and the problem."""


class Connection:
    def __init__(self, path: str | Path, create: bool = True, clock=time.time):
        self.path, self.clock = Path(path), clock  # clock: seconds since the epoch
        self.checkpoints = Checkpoints(self.path.parent / f"{self.path.name}.checkpoints")
        self.timeout = settings.seconds("GROKTERM_BUSY_TIMEOUT_S")
        _check_path(self.path, create)
        self.conn = _connect(self.path, create, self.timeout)
        try:
            self._check_contents(create)
            if create:
                self._wal()
                self.conn.execute("PRAGMA synchronous = NORMAL")
                with self._write():
                    for statement in SCHEMA.split(";"):
                        if statement.strip():
                            self.conn.execute(statement)
                    self._add_columns()
                    self.conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except sqlite3.DatabaseError as err:
            self.conn.close()
            raise StoreError(f"{self.path}: not a usable database ({err})") from None
        except StoreError:
            self.conn.close()
            raise

    def _check_contents(self, create: bool) -> None:
        """Refuse, before any change, a database that is not a grokterm store of a
        version this code knows."""
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.path}: {_newer(version)}")
        tables = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master")}
        if tables and "sweeps" not in tables or not tables and not create:
            raise StoreError(f"{self.path}: an SQLite database, but not a grokterm store "
                             "(it has no sweeps table); pass another --db")  # fmt: skip

    def _wal(self) -> None:
        """Switch a new store to WAL. The switch takes no busy timeout: several processes
        opening a new store at once (two launches, a pool's workers) wait their turn."""
        for attempt in itertools.count():
            try:
                self.conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as err:
                if "locked" not in str(err) or attempt * 0.05 > self.timeout:
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


def writable(path: Path) -> bool:
    """Writable, and meant to be: a file or folder with no write bit is read-only here
    even to root, whom the operating system lets write anything."""
    return os.access(path, os.W_OK) and bool(path.stat().st_mode & 0o222)


def _check_path(path: Path, create: bool) -> None:
    """What the operating system would refuse or sqlite would make a mess of, said plainly."""
    try:
        exists = path.exists()
        folder = path.parent
        if not folder.is_dir():
            raise StoreError(f"{path}: the folder {folder} does not exist")
        if exists and not path.is_file():
            raise StoreError(f"{path}: not a file")
        if not exists and not create:
            raise StoreError(f"{path}: no such database (run a preset first, or pass --db)")
        if create and exists and not writable(path):
            raise StoreError(f"{path}: read-only; training writes to it (make it writable, "
                             "or train into another --db)")  # fmt: skip
        if create and not writable(folder):
            raise StoreError(f"{path}: the folder {folder} is read-only; the store keeps its "
                             "journal and checkpoints beside it")  # fmt: skip
    except OSError as err:  # a name too long, a loop of links, no permission to look
        raise StoreError(f"{path}: {err.strerror.lower()}") from None


def check_file(path: str | Path, create: bool) -> None:
    """Refuse a store that cannot be used as asked on what its file says, before sqlite
    opens it (and makes journal files beside it): not SQLite, truncated, newer. Call it
    only where this process has no connection to the file yet (a command's start):
    closing any descriptor of a file drops every SQLite lock the process holds on it."""
    path = Path(path)
    _check_path(path, create)
    if path.exists() and (problem := _header_problem(path)):
        raise StoreError(f"{path}: {problem}")


def _newer(version: int) -> str:
    return (f"made by a newer grokterm (schema {version}; this one knows up to "
            f"{SCHEMA_VERSION}); upgrade grokterm to use it")  # fmt: skip


def _header_problem(path: Path) -> str | None:
    """What the file's first 100 bytes say against it: not SQLite at all, newer, or
    shorter than it says."""
    with open(path, "rb") as f:
        head = f.read(100)
    if not head:
        return None  # empty: a new store
    if len(head) < 100 or not head.startswith(b"SQLite format 3\0"):
        return "not a database (no SQLite header); pass another --db"
    if (version := int.from_bytes(head[60:64], "big")) > SCHEMA_VERSION:  # PRAGMA user_version
        return _newer(version)
    page = int.from_bytes(head[16:18], "big")
    page = 65536 if page == 1 else page
    # the page count in the header holds where it was written with the change counter
    pages = int.from_bytes(head[28:32], "big") if head[92:96] == head[24:28] else 0
    size, wal = path.stat().st_size, path.with_name(path.name + "-wal")
    if size % page or size < pages * page and not (wal.exists() and wal.stat().st_size):
        return f"damaged: {size} bytes where its header says {pages * page} (truncated?)"
    return None


def _connect(path: Path, create: bool, timeout: float) -> sqlite3.Connection:
    """A writer opens (or makes) the file; a reader opens it read-only, and in a
    read-only folder, where WAL's shared-memory file cannot be made, as immutable
    (nothing there can be writing it; a journal left behind is read as it is)."""
    if create:
        uri = f"file:{urllib.parse.quote(str(path))}?mode=rwc"
    else:
        wal = path.with_name(path.name + "-wal")
        frozen = not writable(path.parent) and not (wal.exists() and wal.stat().st_size)
        uri = f"file:{urllib.parse.quote(str(path))}?{'immutable=1' if frozen else 'mode=ro'}"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=timeout, isolation_level=None)
    except sqlite3.Error as err:
        raise StoreError(f"{path}: cannot be opened ({err})") from None
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
    return conn
