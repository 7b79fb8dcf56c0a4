"""What the app reads from runs.db on each poll, in a thread worker: one call, typed
records, posted to the UI as a message. Reads only new metric points of the runs shown."""

from __future__ import annotations

from dataclasses import dataclass, field

from grokterm.records import MetricPoint, Progress, Run, Sweep, Worker
from grokterm.store import Store


@dataclass
class SweepState:
    sweep: Sweep
    progress: Progress
    workers: list[Worker]  # the running ones
    failures: list[Worker]  # the workers that hit an error, with it and their log
    runs: list[Run]
    new_points: dict[int, list[MetricPoint]] = field(default_factory=dict)  # by run id
    run_ids: tuple[int, ...] = ()  # the selection it was read for
    since_rowid: int = 0  # the points read are those after this one
    last_rowid: int = 0
    gpus: list[str] = field(default_factory=list)  # this machine's GPUs, a line each


def read_sweep(
    store: Store, sweep_id: int, run_ids: tuple[int, ...], since_rowid: int
) -> SweepState:
    new = store.run_points(run_ids, since_rowid) if run_ids else {}
    workers = store.workers(sweep_id)
    last = max([since_rowid, *(p.rowid for points in new.values() for p in points)])
    return SweepState(
        sweep=store.sweep(sweep_id), progress=store.progress(sweep_id),
        workers=[w for w in workers if w.status == "running"],
        failures=[w for w in workers if w.error],
        runs=store.runs(sweep_id), new_points={i: ps for i, ps in new.items() if ps},
        run_ids=tuple(run_ids), since_rowid=since_rowid, last_rowid=last,
    )  # fmt: skip
