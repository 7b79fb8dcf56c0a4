"""Runs and metrics of a sweep as CSV (one header row, empty cells for missing values,
so pandas, R and spreadsheets read numbers as numbers) or Parquet (typed columns, nulls
for missing values). Every series in the registry that a sweep logged is a column.

A file is written beside its target and renamed into place, so a failed export leaves
what was there; the database and its journal files are never a target."""

from __future__ import annotations

import csv
import os
import re
import sys
import tempfile
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import BinaryIO, TextIO

from grokterm import provenance, series
from grokterm.config import RunConfig
from grokterm.records import Sweep
from grokterm.store import Store

CONFIG_TYPES = {f.name: typing.get_type_hints(RunConfig)[f.name] for f in fields(RunConfig)}
# when the run fit, generalized, passed validation 0.5, formed the circuit and went into
# softmax collapse (labels.py)
STEPS = ("fit_step", "gen_step", "half_step", "circuit_step", "collapse_step")


def _logged(values: list[dict]) -> list[str]:
    """The series with a value anywhere in these rows, core ones always, in registry order."""
    seen = {k for v in values for k, x in v.items() if x is not None}
    return [s for s in series.names() if s in series.CORE or s in seen]


@dataclass
class Table:
    """Rows to export, with each column's type (int, float, bool or str; any may be
    missing): a CSV leaves a missing value empty, a Parquet file stores it as null."""

    columns: dict[str, type]
    rows: list[dict]


def runs_table(store: Store, sweep: Sweep) -> Table:
    """One row per run: its config, status, final value of each series, and label."""
    runs = store.runs(sweep.id)
    names = _logged([r.final for r in runs])
    columns = ({"sweep_id": int, "sweep": str, "scale": str, "run_id": int, "key": str}
               | CONFIG_TYPES | {"status": str, "step": int} | dict.fromkeys(names, float)
               | dict.fromkeys(("label", "label_alt", "label_trend", "label_note"), str)
               | dict.fromkeys(STEPS, int) | {"error": str, "machine": str})  # fmt: skip
    machine = "; ".join(provenance.describe(m) for m in store.machines(sweep.id)) or None
    rows = [
        r.config.to_dict() | {k: r.final.get(k) for k in names}
        | {"sweep_id": sweep.id, "sweep": sweep.name, "scale": sweep.scale, "run_id": r.id,
           "key": r.key, "status": r.status, "step": r.step, "label": r.label,
           "label_alt": r.info and r.info.alt, "label_trend": r.info and r.info.trend,
           "label_note": r.info and r.info.note,
           **{k: r.info and getattr(r.info, k) for k in STEPS},
           "error": r.error, "machine": machine}
        for r in runs
    ]  # fmt: skip
    return Table(columns, rows)


def metrics_table(store: Store, sweep: Sweep) -> Table:
    """One row per (run, step): the run's grid values, then every logged series."""
    runs = {r.id: r for r in store.runs(sweep.id)}
    grid_keys = list(dict.fromkeys(k for r in runs.values() for k in r.grid))
    points = store.points(sweep.id)
    names = _logged([p.values for p in points])
    columns = ({"sweep_id": int, "run_id": int, "key": str}
               | {k: CONFIG_TYPES.get(k, int) for k in grid_keys} | {"step": int}
               | dict.fromkeys(names, float))  # fmt: skip
    rows = [
        {"sweep_id": sweep.id, "run_id": p.run_id, "key": runs[p.run_id].key}
        | runs[p.run_id].grid
        | {"step": p.step}
        | {k: p.values.get(k) for k in names}
        for p in points
    ]
    return Table(columns, rows)


def write_csv(table: Table, out: TextIO) -> int:
    writer = csv.DictWriter(out, list(table.columns), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(table.rows)
    return len(table.rows)


def write_parquet(table: Table, out: BinaryIO) -> int:
    """Typed columns through pyarrow (the parquet extra)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    kinds = {int: pa.int64(), float: pa.float64(), bool: pa.bool_(), str: pa.string()}
    schema = pa.schema([(name, kinds[kind]) for name, kind in table.columns.items()])
    columns = {name: [row.get(name) for row in table.rows] for name in table.columns}
    pq.write_table(pa.table(columns, schema=schema), out)
    return len(table.rows)


FORMATS = {"csv": write_csv, "parquet": write_parquet}
PARQUET_INSTALL = 'Parquet export needs pyarrow: pip install -e ".[parquet]"'


class ExportError(ValueError):
    """An export target that cannot or must not be written: one line naming it."""


def export_to(store: Store, sweep: Sweep, target: str | Path, metrics: bool = False,
              format: str = "csv") -> int:  # fmt: skip
    """Write a sweep's runs (or metrics) to a file, or to stdout for "-", as CSV or
    Parquet; rows written."""
    if format == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise ExportError(PARQUET_INSTALL) from None
    table = (metrics_table if metrics else runs_table)(store, sweep)
    writer, mode = FORMATS[format], "w" if format == "csv" else "wb"
    if str(target) == "-":
        return writer(table, sys.stdout if mode == "w" else sys.stdout.buffer)
    path, name = Path(target), str(target)  # named as the user gave it
    _check_target(store, path, name)
    text = {"newline": ""} if mode == "w" else {}
    try:
        if path.exists() and not path.is_file():  # a device or a pipe: written as it is
            with open(path, mode, **text) as out:
                return writer(table, out)
        with tempfile.NamedTemporaryFile(mode, dir=path.parent, delete=False, **text,
                                         prefix=f".{path.name}.", suffix=".tmp") as out:  # fmt: skip
            try:
                n = writer(table, out)
                out.flush()
                os.fsync(out.fileno())
            except BaseException:
                os.unlink(out.name)
                raise
        os.replace(out.name, path)
        return n
    except OSError as err:
        raise ExportError(f"{name}: cannot be written ({err.strerror or err})") from None


def _check_target(store: Store, path: Path, name: str) -> None:
    try:
        if path.is_dir():
            raise ExportError(f"{name}: is a folder; name a file in it")
        if not path.parent.is_dir():
            raise ExportError(f"{name}: the folder {path.parent} does not exist")
        db = store.path.resolve()
        guarded = [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]
        if path.resolve() in guarded or any(
            path.exists() and g.exists() and os.path.samefile(path, g) for g in guarded
        ):
            raise ExportError(f"{name}: is the database (or its journal); name another file")
    except OSError as err:
        raise ExportError(f"{name}: {err.strerror or err}") from None


def safe_name(name: str) -> str:
    """A sweep's name as one file name: no folders, no hidden file ("../x" is "x")."""
    return re.sub(r"[^\w.=-]+", "-", name).strip(".-") or "sweep"
