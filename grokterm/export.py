"""Runs and metrics of a sweep as CSV, one header row, empty cells for missing
values, so pandas, R and spreadsheets read numbers as numbers. Every series in the
registry that a sweep logged is a column.

A file is written beside its target and renamed into place, so a failed export leaves
what was there; the database and its journal files are never a target."""

from __future__ import annotations

import csv
import os
import re
import sys
import tempfile
from dataclasses import fields
from pathlib import Path
from typing import TextIO

from grokterm import provenance, series
from grokterm.config import RunConfig
from grokterm.records import Sweep
from grokterm.store import Store

CONFIG_COLUMNS = [f.name for f in fields(RunConfig)]
# when the run fit, generalized, passed validation 0.5, formed the circuit and went into
# softmax collapse (labels.py)
STEPS = ("fit_step", "gen_step", "half_step", "circuit_step", "collapse_step")


def _logged(values: list[dict]) -> list[str]:
    """The series with a value anywhere in these rows, core ones always, in registry order."""
    seen = {k for v in values for k, x in v.items() if x is not None}
    return [s for s in series.names() if s in series.CORE or s in seen]


def export_runs(store: Store, sweep: Sweep, out: TextIO) -> int:
    """One row per run: its config, status, final value of each series, and label."""
    runs = store.runs(sweep.id)
    names = _logged([r.final for r in runs])
    header = ["sweep_id", "sweep", "scale", "run_id", "key", *CONFIG_COLUMNS,
              "status", "step", *names, "label", "label_alt", "label_trend", "label_note",
              *STEPS, "error", "machine"]  # fmt: skip
    machine = "; ".join(provenance.describe(m) for m in store.machines(sweep.id)) or None
    writer = csv.DictWriter(out, header, extrasaction="ignore")
    writer.writeheader()
    for r in runs:
        writer.writerow(
            r.config.to_dict() | {k: r.final.get(k) for k in names}
            | {"sweep_id": sweep.id, "sweep": sweep.name, "scale": sweep.scale, "run_id": r.id,
               "key": r.key, "status": r.status, "step": r.step, "label": r.label,
               "label_alt": r.info and r.info.alt, "label_trend": r.info and r.info.trend,
               "label_note": r.info and r.info.note,
               **{k: r.info and getattr(r.info, k) for k in STEPS},
               "error": r.error, "machine": machine}
        )  # fmt: skip
    return len(runs)


def export_metrics(store: Store, sweep: Sweep, out: TextIO) -> int:
    """One row per (run, step): the run's grid values, then every logged series."""
    runs = {r.id: r for r in store.runs(sweep.id)}
    grid_keys = list(dict.fromkeys(k for r in runs.values() for k in r.grid))
    points = store.points(sweep.id)
    names = _logged([p.values for p in points])
    header = ["sweep_id", "run_id", "key", *grid_keys, "step", *names]
    writer = csv.DictWriter(out, header, extrasaction="ignore")
    writer.writeheader()
    for p in points:
        run = runs[p.run_id]
        writer.writerow(
            {"sweep_id": sweep.id, "run_id": p.run_id, "key": run.key} | run.grid
            | {"step": p.step} | {k: p.values.get(k) for k in names}
        )  # fmt: skip
    return len(points)


class ExportError(ValueError):
    """An export target that cannot or must not be written: one line naming it."""


def export_to(store: Store, sweep: Sweep, target: str | Path, metrics: bool = False) -> int:
    """Write a sweep's runs (or metrics) to a file, or to stdout for "-"; rows written."""
    write = export_metrics if metrics else export_runs
    if str(target) == "-":
        return write(store, sweep, sys.stdout)
    path, name = Path(target), str(target)  # named as the user gave it
    _check_target(store, path, name)
    try:
        if path.exists() and not path.is_file():  # a device or a pipe: written as it is
            with open(path, "w", newline="") as out:
                return write(store, sweep, out)
        with tempfile.NamedTemporaryFile("w", newline="", dir=path.parent, delete=False,
                                         prefix=f".{path.name}.", suffix=".tmp") as out:  # fmt: skip
            try:
                n = write(store, sweep, out)
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
