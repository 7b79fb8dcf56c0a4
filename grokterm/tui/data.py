"""What the app reads from runs.db on each poll, in a thread worker: one call, plain
data, posted to the UI as a message. Reads only new metric rows of the runs shown."""

from __future__ import annotations

from dataclasses import dataclass, field

from grokterm.store import Store


@dataclass
class SweepState:
    sweep: dict
    progress: dict
    workers: list[dict]
    runs: list[dict]
    new_metrics: dict[int, list[dict]] = field(default_factory=dict)  # run id -> rows
    run_ids: list[int] = field(default_factory=list)  # the selection it was read for
    since_rowid: int = 0  # the metric rows read are those after this one
    last_rowid: int = 0


def read_sweep(store: Store, sweep_id: int, run_ids: list[int], since_rowid: int) -> SweepState:
    new = store.run_metrics_since(run_ids, since_rowid) if run_ids else []
    by_run: dict[int, list[dict]] = {}
    for row in new:
        by_run.setdefault(row["run_id"], []).append(row)
    last = max([since_rowid, *(r["rowid"] for r in new)])
    return SweepState(
        sweep=store.sweep(sweep_id), progress=store.progress(sweep_id),
        workers=[w for w in store.workers(sweep_id) if w["status"] == "running"],
        runs=store.runs(sweep_id), new_metrics=by_run, run_ids=list(run_ids),
        since_rowid=since_rowid, last_rowid=last,
    )  # fmt: skip
