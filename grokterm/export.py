"""Runs and metrics of a sweep as CSV, one header row, empty cells for missing
values, so pandas, R and spreadsheets read numbers as numbers."""

from __future__ import annotations

import csv
from dataclasses import fields
from typing import TextIO

from grokterm.config import RunConfig
from grokterm.store import METRIC_COLUMNS, Store

CONFIG_COLUMNS = [f.name for f in fields(RunConfig)]


def export_runs(store: Store, sweep: dict, out: TextIO) -> int:
    """One row per run: its config, status, final metrics and label."""
    header = ["sweep_id", "sweep", "scale", "run_id", "key", *CONFIG_COLUMNS,
              "status", "step", *METRIC_COLUMNS, "label"]  # fmt: skip
    writer = csv.DictWriter(out, header, extrasaction="ignore")
    writer.writeheader()
    runs = store.runs(sweep["id"])
    for r in runs:
        writer.writerow(
            r["config"] | {k: r[k] for k in ("key", "status", "step", "label", *METRIC_COLUMNS)}
            | {"sweep_id": sweep["id"], "sweep": sweep["name"], "scale": sweep["scale"], "run_id": r["id"]}
        )  # fmt: skip
    return len(runs)


def export_metrics(store: Store, sweep: dict, out: TextIO) -> int:
    """One row per (run, step): the run's grid values, then every logged series."""
    runs = {r["id"]: r for r in store.runs(sweep["id"])}
    grid_keys = list(dict.fromkeys(k for r in runs.values() for k in r["grid"]))
    rows = store.metrics(sweep["id"])
    extra_keys = sorted({k for m in rows for k in m["extras"]})
    header = ["sweep_id", "run_id", "key", *grid_keys, "step", *METRIC_COLUMNS, *extra_keys]
    writer = csv.DictWriter(out, header, extrasaction="ignore")
    writer.writeheader()
    for m in rows:
        run = runs[m["run_id"]]
        writer.writerow(
            {"sweep_id": sweep["id"], "run_id": m["run_id"], "key": run["key"]}
            | run["grid"] | {k: m[k] for k in ("step", *METRIC_COLUMNS)} | m["extras"]
        )  # fmt: skip
    return len(rows)
