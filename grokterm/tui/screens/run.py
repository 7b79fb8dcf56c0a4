"""One run in detail (enter on a run): status and error, device and worker, its label
with the numbers behind it, its curves, its full config, and the preset that trains
it alone (w writes it, with the command that runs it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import Footer, Header, Static

from grokterm import reproduce
from grokterm.labels import FIT, VAL_GEN, VAL_HALF, VAL_LOW
from grokterm.records import MetricPoint, Run, Sweep, Worker
from grokterm.tui.screens.polling import PollingScreen
from grokterm.tui.widgets.curves import Curves


@dataclass
class RunState:
    sweep: Sweep
    run: Run
    workers: list[Worker]  # the running ones training its cohort
    points: list[MetricPoint] = field(default_factory=list)  # after since_rowid
    since_rowid: int = 0
    runs: list[Run] = field(default_factory=list)  # the sweep's: its colour is its place there


class RunScreen(PollingScreen):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "back"),
        Binding("w", "write_preset", "write its preset"),
        Binding("g", "toggle_log", "log step"),
    ]
    READING = "reading the run"

    class Updated(Message):
        def __init__(self, state: RunState):
            super().__init__()
            self.state = state

    def __init__(self, sweep_id: int, run_id: int):
        super().__init__()
        self.sweep_id, self.run_id = sweep_id, run_id
        self.state: RunState | None = None
        self.cursor_rowid = 0

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="run-detail"):
            yield Static(id="run-status")
            yield Static(id="run-label")
            yield Curves(id="run-curves")
            yield Static(id="run-config")
            yield Static(id="run-alone")
        yield Footer()

    def read(self) -> None:
        with self.app.reader() as store:
            runs = store.runs(self.sweep_id)
            run = next(r for r in runs if r.id == self.run_id)
            workers = [w for w in store.workers(self.sweep_id)
                       if w.status == "running" and w.cohort_id == run.cohort_id]  # fmt: skip
            points = store.run_points([run.id], self.cursor_rowid).get(run.id, [])
            state = RunState(store.sweep(self.sweep_id), run, workers, points, self.cursor_rowid,
                             runs)  # fmt: skip
        self.post_message(self.Updated(state))

    def on_run_screen_updated(self, message: Updated) -> None:
        state = self.state = message.state
        run = state.run
        self.title, self.sub_title = "grokterm", f"sweep {state.sweep.id}: run {run.id} {run.key}"
        self.query_one("#run-status", Static).update(_status(run, state.workers))
        self.query_one("#run-label", Static).update(_label(run))
        self.query_one("#run-config", Static).update(_config(run))
        name, _ = reproduce.alone(state.sweep, run)
        self.query_one("#run-alone", Static).update(
            f"trains alone (the same curves): {reproduce.command(name)}   (w writes {name})"
        )
        curves = self.query_one(Curves)
        if not curves.series:
            curves.show_runs(state.runs, [run.id])  # in the colour it has in the sweep
        if state.since_rowid == self.cursor_rowid and state.points:
            self.cursor_rowid = state.points[-1].rowid
            curves.add_points({run.id: state.points})

    def action_toggle_log(self) -> None:
        curves = self.query_one(Curves)
        curves.set_view(log_step=not curves.view.log_step)

    def action_write_preset(self) -> None:
        """The run's own preset, in the working folder, never over another file."""
        if self.state is None:
            return
        name, text = reproduce.alone(self.state.sweep, self.state.run)
        path = Path.cwd() / name
        try:
            with open(path, "x") as out:
                out.write(text)
        except FileExistsError:
            self.notify(f"{path} is there already; run it: {reproduce.command(name)}")
            return
        except OSError as err:
            self.notify(f"cannot write {path}: {err.strerror or err}", severity="error")
            return
        self.notify(f"wrote {path}; run it alone: {reproduce.command(name)}")


def _status(run: Run, workers: list[Worker]) -> str:
    lines = [f"{run.key}: {run.status}, step {run.step} of {run.config.steps}"
             f"{f', on {run.device}' if run.device else ''}"]  # fmt: skip
    for w in workers:
        where = f" on {w.node}" if w.node else f" (pid {w.pid} on {w.host})"
        lines.append(f"trained by worker {w.id}{where}, cohort {run.cohort_id}, "
                     f"{w.steps_per_sec or 0:.0f} steps/s")  # fmt: skip
    if run.error:
        lines.append(f"error: {run.error}")
    return "\n".join(lines)


def _label(run: Run) -> str:
    info = run.info
    if info is None:
        return "label: not yet (labelled from the curve as it trains)"

    def at(step: int | None, known: bool = True) -> str:
        return str(step) if step is not None else "never" if known else "not recorded"

    change = (
        ""
        if info.norm_change is None
        else f", change through the transition {info.norm_change:+.1f}"
    )
    lines = [
        f"label: {info.shown or 'none (no validation set)'}" + (f" ({info.note})" if info.note else ""),
        f"  fit the training set (train >= {FIT}) at step {at(info.fit_step)}; validation rose "
        f"(>= {VAL_LOW}) at {at(info.rise_step)}, passed {VAL_HALF} at "
        f"{at(info.half_step, info.gen_step is None or info.half_step is not None)}, "
        f"generalized (>= {VAL_GEN}) at {at(info.gen_step)}",
        f"  final train {info.final_train:.3f}, validation "
        + ("-" if info.final_val is None else f"{info.final_val:.3f}")
        + f"; largest train - validation gap before the fit {info.max_gap:.3f}",
        f"  parameter norm {info.norm_start:.1f} -> peak {info.norm_peak:.1f} -> {info.norm_final:.1f}{change}",
        f"  bumps in train accuracy: {info.bumps}; circuit formed at "
        f"{at(info.circuit_step, run.value('restricted_loss') is not None)}; "
        f"softmax collapse at {at(info.collapse_step)}",
    ]  # fmt: skip
    return "\n".join(lines)


def _config(run: Run) -> Table:
    table = Table(title="config", box=None, show_header=False, pad_edge=False)
    table.add_column("key", style="bold")
    table.add_column("value")
    for key, value in run.config.to_dict().items():
        table.add_row(key, str(value))
    return table
