"""How a row of runs.db reads as a typed record, and a record's series values as
the metric columns: the store's mapping, kept apart so the store holds only SQL."""

from __future__ import annotations

import json

from grokterm.config import RunConfig
from grokterm.records import Dynamics, MetricPoint, Run, Sweep
from grokterm.series import CORE


def record(cls, row: dict):
    """A record from the row's columns of its fields' names (extra columns ignored)."""
    return cls(**{k: row[k] for k in cls.__dataclass_fields__ if k in row})


def sweep(row: dict | None) -> Sweep | None:
    return None if row is None else record(Sweep, row)


def run(row: dict) -> Run:
    return Run(
        id=row["id"], sweep_id=row["sweep_id"], cohort_id=row["cohort_id"], key=row["key"],
        grid=json.loads(row["grid"]), config=RunConfig.from_dict(json.loads(row["config"])),
        status=row["status"], step=row["step"], final=values_of(row), label=row["label"],
        info=Dynamics.from_dict(json.loads(row["label_info"] or "{}")), device=row["device"],
        error=row.get("error"),
    )  # fmt: skip


def point(row: dict) -> MetricPoint:
    return MetricPoint(row["run_id"], row["step"], values_of(row), row.get("rowid", 0))


def values_of(row: dict) -> dict:
    return {c: row[c] for c in CORE} | json.loads(row.get("extras") or "{}")


def columns(values: dict) -> tuple:
    """The core series as columns, the rest as JSON; NaN and infinity as NULL (SQLite
    has no NaN)."""
    extras = {k: finite_or_none(v) for k, v in values.items() if k not in CORE}
    return (*(finite_or_none(values.get(c)) for c in CORE), json.dumps(extras) if extras else None)


def finite_or_none(value):
    if value is None or value != value or value in (float("inf"), float("-inf")):
        return None
    return value
