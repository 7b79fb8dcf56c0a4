"""Runs and metrics of a sweep as CSV, one header row, empty cells for missing
values, so pandas, R and spreadsheets read numbers as numbers. Every series in the
registry that a sweep logged is a column."""

from __future__ import annotations

import csv
from dataclasses import fields
from typing import TextIO

from grokterm import series
from grokterm.config import RunConfig
from grokterm.records import Sweep
from grokterm.store import Store

CONFIG_COLUMNS = [f.name for f in fields(RunConfig)]


def _logged(values: list[dict]) -> list[str]:
    """The series with a value anywhere in these rows, core ones always, in registry order."""
    seen = {k for v in values for k, x in v.items() if x is not None}
    return [s for s in series.names() if s in series.CORE or s in seen]


def export_runs(store: Store, sweep: Sweep, out: TextIO) -> int:
    """One row per run: its config, status, final value of each series, and label."""
    runs = store.runs(sweep.id)
    names = _logged([r.final for r in runs])
    header = ["sweep_id", "sweep", "scale", "run_id", "key", *CONFIG_COLUMNS,
              "status", "step", *names, "label", "error"]  # fmt: skip
    writer = csv.DictWriter(out, header, extrasaction="ignore")
    writer.writeheader()
    for r in runs:
        writer.writerow(
            r.config.to_dict() | {k: r.final.get(k) for k in names}
            | {"sweep_id": sweep.id, "sweep": sweep.name, "scale": sweep.scale, "run_id": r.id,
               "key": r.key, "status": r.status, "step": r.step, "label": r.label, "error": r.error}
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
