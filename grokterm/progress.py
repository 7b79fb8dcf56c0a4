"""What `grokterm run` shows: a live view of a sweep read from the store (run-steps
done, runs finished, each worker's cohort, speed and ETA), plain progress lines where
stdout is not a terminal, and the summary table."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from grokterm import settings
from grokterm.backends import Backend
from grokterm.records import Progress as ProgressRecord
from grokterm.records import Run, Sweep, Worker
from grokterm.store import Store

POLL_S = 0.25


class SweepView:
    """The bar counts run-steps done of run-steps planned (a sweep of one long cohort
    moves as it trains, not only when runs finish), with runs finished beside it."""

    def __init__(self, store: Store, sweep: Sweep):
        self.store, self.sweep = store, sweep
        self.bar = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(),
            TextColumn("{task.fields[runs]}"), TimeElapsedColumn(), TextColumn("ETA"),
            TimeRemainingColumn(),
        )  # fmt: skip
        self.task = self.bar.add_task(f"{sweep.name} ({sweep.scale})", total=None, runs="")

    def render(self) -> Group:
        p = self.store.progress(self.sweep.id)
        self.bar.update(self.task, total=p.run_steps, completed=p.run_steps_done, runs=runs_text(p))
        return Group(self.bar, workers_table(self.store.workers(self.sweep.id)))


def runs_text(p: ProgressRecord) -> str:
    extra = "".join(
        f", {n} {what}" for n, what in ((p.diverged, "diverged"), (p.failed, "failed")) if n
    )
    return f"{p.finished}/{p.runs} runs finished{extra}"


def work_text(p: ProgressRecord, workers: list[Worker]) -> str:
    """Run-steps done of planned, the running workers' summed rate, and the ETA it gives."""
    share = p.run_steps_done / p.run_steps if p.run_steps else 0.0
    text = f"{p.run_steps_done:,}/{p.run_steps:,} run-steps ({share:.0%})"
    rate = sum((w.steps_per_sec or 0) * (w.cohort_runs or 0) for w in workers
               if w.status == "running" and w.cohort_id)  # fmt: skip
    if rate > 0 and p.run_steps_done < p.run_steps:
        left = timedelta(seconds=int((p.run_steps - p.run_steps_done) / rate))
        text += f", {rate:,.0f} run-steps/s, ETA {left}"
    return text


class PlainLines:
    """Where stdout is not a terminal (a log, a batch job): a line every so often with
    runs finished, run-steps done, the rate since the first line and an ETA."""

    def __init__(self, console: Console, store: Store, sweep: Sweep):
        self.console, self.store, self.sweep = console, store, sweep
        self.every = settings.seconds("GROKTERM_PROGRESS_S")
        self.first: tuple[float, int] | None = None  # (time, run-steps done) at the first line
        self.printed = 0.0

    def tick(self) -> None:
        now = time.monotonic()
        if self.first is not None and now - self.printed < self.every:
            return
        p = self.store.progress(self.sweep.id)
        self.first = self.first or (now, p.run_steps_done)
        rate = eta = ""
        elapsed, gained = now - self.first[0], p.run_steps_done - self.first[1]
        if elapsed > 0 and gained > 0:
            speed = gained / elapsed
            rate = f", {speed:,.0f} run-steps/s"
            eta = f", ETA {timedelta(seconds=int((p.run_steps - p.run_steps_done) / speed))}"
        share = p.run_steps_done / p.run_steps if p.run_steps else 0.0
        self.console.print(
            f"{time.strftime('%H:%M:%S')} sweep {self.sweep.id}: {runs_text(p)}, "
            f"{p.run_steps_done:,}/{p.run_steps:,} run-steps ({share:.0%}){rate}{eta}",
            soft_wrap=True, markup=False, highlight=False,
        )  # fmt: skip
        self.printed = now


def follow(console: Console, store: Store, sweep: Sweep, workers: Backend,
           interrupted: Callable[[], bool] = lambda: False) -> str:  # fmt: skip
    """Show the sweep until it is "finished", or until no worker is left to train it:
    "stopped" (they were asked to, from elsewhere: the app's x) or "failing". Dead
    workers are replaced meanwhile, a bounded number of times; "interrupted" as soon as
    `interrupted()` says so (a Ctrl-C). Live in a terminal, plain lines elsewhere."""
    if not console.is_terminal:
        return _watch(store, sweep, workers, PlainLines(console, store, sweep).tick, interrupted)
    view = SweepView(store, sweep)
    with Live(view.render(), console=console, refresh_per_second=4, transient=True) as live:
        return _watch(store, sweep, workers, lambda: live.update(view.render()), interrupted)


def _watch(store: Store, sweep: Sweep, workers: Backend, show, interrupted) -> str:
    while not store.sweep_finished(sweep.id):
        if interrupted():
            return "interrupted"
        workers.check()
        if not workers.alive():
            if store.sweep_finished(sweep.id):
                break
            return "stopped" if workers.stopped else "failing"
        show()
        time.sleep(POLL_S)
    return "finished"


def workers_table(workers: list[Worker]) -> Table:
    table = Table(box=None, pad_edge=False)
    for col in ("worker", "device", "cohort", "step", "steps/s", "ETA", "heartbeat"):
        table.add_column(col, justify="right" if col in ("step", "steps/s") else "left")
    now = time.time()
    for w in workers:
        if w.status != "running":
            continue
        rate, steps = w.steps_per_sec, w.cohort_steps
        eta = ""
        if w.cohort_id and rate and steps:
            eta = str(timedelta(seconds=int((steps - (w.step or 0)) / rate)))
        table.add_row(
            f"{w.id} ({w.node or f'pid {w.pid}'})", w.device,
            f"#{w.cohort_id} ({w.cohort_runs} runs)" if w.cohort_id else "waiting",
            f"{w.step or 0}/{steps}" if steps else "", f"{rate:.1f}" if rate else "",
            eta, f"{now - w.heartbeat:.0f}s ago",
        )  # fmt: skip
    return table


def summary_table(runs: list[Run]) -> Table:
    """Final values per run, its label (or its status, where it is not done), and
    when it fit the training set and generalized: the first evaluation with train
    accuracy >= 0.99 (fit@) and with validation accuracy >= 0.95 (gen@).
    Fits 80 columns."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, title="runs")
    for col in ("run", "step", "train", "val", "norm", "label", "fit@", "gen@"):
        table.add_column(col, justify="left" if col in ("run", "label") else "right", no_wrap=True)
    for r in runs:
        info = r.info
        label = r.short_label if r.status == "done" else r.status
        table.add_row(
            r.key, str(r.step), _fmt(r.value("train_acc")), _fmt(r.value("val_acc")),
            _fmt(r.value("norm"), 1), label or "", _step(info and info.fit_step),
            _step(info and info.gen_step),
        )  # fmt: skip
    return table


def _step(value: int | None) -> str:
    return "" if value is None else str(value)


def _fmt(value: float | None, digits: int = 3) -> str:
    return "" if value is None else f"{value:.{digits}f}"
