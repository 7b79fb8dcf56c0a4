"""One sweep, live: progress and workers, the run table, curves of the selected
runs, the phase map, and the paper's figure with its claims.

While the screen is shown, a timer starts a thread worker that reads what changed
(tui.data.read_sweep) on its own connection and posts it as a message; the handler
updates the widgets on the UI thread. The selection, the sort column and log step are
reactive state: their watchers redraw what depends on them."""

from __future__ import annotations

import time

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import (
    DataTable,
    Footer,
    Header,
    Input,
    ProgressBar,
    Static,
    TabbedContent,
    TabPane,
)  # fmt: skip

from grokterm.export import safe_name
from grokterm.progress import runs_text, work_text
from grokterm.records import Run, Worker
from grokterm.report import report, stored_preset
from grokterm.series import label as series_label
from grokterm.series import names as series_names
from grokterm.tui.data import SweepState, read_sweep
from grokterm.tui.screens.polling import PollingScreen
from grokterm.tui.screens.run import RunScreen
from grokterm.tui.widgets.curves import Curves
from grokterm.tui.widgets.figure import FigureView
from grokterm.tui.widgets.phase_map import PhaseMap
from grokterm.tui.widgets.tables import sync_table

RUN_COLUMNS = ("key", "status", "step", "train", "val", "norm", "label")


class SweepScreen(PollingScreen):
    # The footer shows what fits 80 columns; the tabs' keys (1-4, also on the tabs), S,
    # g, m and e are under ? with the rest.
    BINDINGS = [
        Binding("escape", "back", "back"),
        Binding("s", "sort", "sort"),
        Binding("S", "reverse", "reverse", key_display="S", show=False),
        Binding("slash", "filter", "filter", key_display="/"),
        Binding("space", "toggle_run", "overlay", show=False),
        Binding("e", "export", "export", show=False),
        Binding("1", "tab('runs')", "runs", show=False),
        Binding("2", "tab('curves')", "curves", show=False),
        Binding("3", "tab('phase')", "phase map", show=False),
        Binding("4", "tab('figure')", "figure", show=False),
        Binding("g", "toggle_log", "log step", show=False),
        Binding("m", "next_metric", "series", show=False),
    ]

    selected: reactive[tuple[int, ...]] = reactive((), init=False)  # runs whose curves are drawn
    sort_column: reactive[int] = reactive(0, init=False)  # index into RUN_COLUMNS
    descending: reactive[bool] = reactive(False, init=False)  # the sort's direction
    log_step: reactive[bool] = reactive(True, init=False)  # curves against log10 step
    metric: reactive[str] = reactive("norm", init=False)  # beside accuracy in the curves

    class Updated(Message):
        def __init__(self, state: SweepState, seconds: float):
            super().__init__()
            self.state, self.seconds = state, seconds

    def __init__(self, sweep_id: int):
        super().__init__()
        self.sweep_id = sweep_id
        self.state: SweepState | None = None
        self.table_rows: dict[str, tuple] = {}  # run id -> the cells shown, in table order
        self.cursor_rowid = 0
        self.selection_title = ""
        self.last_refresh_ms = 0.0
        self.figure_at = (-1, 0.0)  # (run-steps done, monotonic time) when last drawn

    def compose(self) -> ComposeResult:
        yield Header()
        yield ProgressBar(id="progress", show_eta=False)
        yield Static(id="workers")
        with TabbedContent(initial="runs"):
            with TabPane("Runs", id="runs"):
                yield Input(placeholder="filter runs (key, status or label)", id="filter")
                yield DataTable(id="run-table", cursor_type="row", zebra_stripes=True)
            with TabPane("Curves", id="curves"):
                yield Static(
                    "select runs in the table or a cell of the phase map", id="curves-title"
                )
                yield Curves(id="curve-plots")
            with TabPane("Phase map", id="phase"), VerticalScroll():
                yield PhaseMap(id="phase-map")
                yield Curves(id="cell-curves")  # the cell under the cursor
            with TabPane("Figure", id="figure"):
                yield FigureView(id="figure-scroll")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "grokterm"
        table = self.query_one("#run-table", DataTable)
        self._sorted()  # the columns, with the sort's mark
        table.focus()  # arrows and Enter pick a run at once; "/" goes to the filter

    # -- polling, only while shown -------------------------------------------------------

    READING = "reading the sweep"

    def read(self) -> None:
        start = time.perf_counter()
        with self.app.reader() as store:
            state = read_sweep(store, self.sweep_id, self.selected, self.cursor_rowid)
        self.post_message(self.Updated(state, time.perf_counter() - start))

    def on_sweep_screen_updated(self, message: Updated) -> None:
        start = time.perf_counter()
        state = self.state = message.state
        p = state.progress
        self.sub_title = f"sweep {state.sweep.id}: {state.sweep.name} ({state.sweep.scale})"
        # work done, in run-steps: a sweep of long cohorts moves as it trains
        self.query_one(ProgressBar).update(total=max(p.run_steps, 1), progress=p.run_steps_done)
        self.query_one("#workers", Static).update(self._workers_line(state))
        self._fill_table(state.runs)
        self.query_one(PhaseMap).update_runs(state.runs)
        self._figure_live(state)
        # A read that started before the selection or the cursor last changed would
        # add its rows twice or rewind the cursor: only a read from the current one counts.
        if state.run_ids == self.selected and state.since_rowid == self.cursor_rowid:
            self.cursor_rowid = state.last_rowid
            for curves in self.query(Curves):
                curves.add_points(state.new_points)
        self.last_refresh_ms = (time.perf_counter() - start + message.seconds) * 1000

    def _workers_line(self, state: SweepState) -> str:
        p = state.progress
        head = f"{work_text(p, state.workers)}; {runs_text(p)}"
        errors = [f"worker {w.id} ({w.status}): {w.error}  log: {w.log}" for w in state.failures]
        return "\n".join([head, *(_worker_line(w) for w in state.workers), *errors])

    def _fill_table(self, runs: list[Run]) -> None:
        """The runs the filter keeps, in the sort column's order."""
        table = self.query_one("#run-table", DataTable)
        text = self.query_one("#filter", Input).value.strip().lower()
        shown = [r for r in runs if not text or text in f"{r.key} {r.status} {r.label}".lower()]
        column = RUN_COLUMNS[self.sort_column]
        shown.sort(key=lambda r: _sort_key(r, column, self.descending))
        rows = {str(r.id): _cells(r) for r in shown}
        self.table_rows = sync_table(table, RUN_COLUMNS, self.table_rows, rows)

    # -- selection and actions --------------------------------------------------------

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter: the run in detail."""
        self.app.push_screen(RunScreen(self.sweep_id, int(event.row_key.value)))

    def action_toggle_run(self) -> None:
        """Space: the run under the cursor joins the overlaid curves, or leaves them."""
        table = self.query_one("#run-table", DataTable)
        if self.state is None or not table.row_count:
            return
        run_id = int(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)
        chosen = set(self.selected) ^ {run_id}
        keys = [r.key for r in self.state.runs if r.id in chosen]
        self.select_runs(list(chosen), ", ".join(keys) if len(keys) < 3 else f"{len(keys)} runs")
        self.notify(f"curves: {len(chosen)} run(s) overlaid (2 shows them)")

    def on_phase_map_cell_highlighted(self, event: PhaseMap.CellHighlighted) -> None:
        self.select_runs(event.run_ids, event.title)

    def on_phase_map_cell_selected(self, event: PhaseMap.CellSelected) -> None:
        self.show_curves(event.run_ids, event.title)

    def select_runs(self, run_ids: list[int], title: str) -> None:
        """The runs whose curves both curve views draw."""
        self.selection_title = title
        self.selected = tuple(r.id for r in self.state.runs if r.id in run_ids)

    def watch_selected(self, selected: tuple[int, ...]) -> None:
        """A new selection: its points are read anew from the first."""
        names = {r.id: r.key for r in self.state.runs if r.id in selected}
        self.cursor_rowid = 0
        self.query_one("#curves-title", Static).update(f"curves: {self.selection_title}")
        for curves in self.query(Curves):
            curves.show_runs(names)
        self.poll()

    def show_curves(self, run_ids: list[int], title: str) -> None:
        self.select_runs(run_ids, title)
        self.query_one(TabbedContent).active = "curves"
        self.query_one("#curve-plots").focus()  # else the focused table pulls its tab back

    def on_input_changed(self, event: Input.Changed) -> None:
        if self.state is not None:
            self._fill_table(self.state.runs)

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id == "figure":  # once laid out: the plot takes the pane's size
            self.call_after_refresh(self._draw_figure)

    FIGURE_EVERY_S = 5.0  # a shown figure is drawn again this often while the sweep trains

    def _figure_live(self, state: SweepState) -> None:
        view = self.query_one(FigureView)
        view.stem = f"{safe_name(state.sweep.name)}-sweep{state.sweep.id}"
        shown = self.query_one(TabbedContent).active == "figure"
        done = state.progress.run_steps_done
        if (
            shown
            and done != self.figure_at[0]
            and time.monotonic() - self.figure_at[1] > (self.FIGURE_EVERY_S)
        ):
            self._draw_figure()

    def _draw_figure(self) -> None:
        done = self.state.progress.run_steps_done if self.state else -1
        self.figure_at = (done, time.monotonic())
        self.query_one(FigureView).draw(self._report)

    def _report(self, store, size):
        """The sweep's figure and claims, as `grokterm show` gives them (in a thread)."""
        sweep = store.sweep(self.sweep_id)
        return report(store, stored_preset(sweep), sweep, (), size)

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
        # Every tab focuses a widget of its own: focus left in another tab pulls it back.
        focus = {"runs": "#run-table", "curves": "#curve-plots", "phase": "#phase-map",
                 "figure": "#figure-scroll"}[tab]  # fmt: skip
        self.query_one(focus).focus()

    def action_toggle_log(self) -> None:
        self.log_step = not self.log_step

    def watch_log_step(self, log_step: bool) -> None:
        for curves in self.query(Curves):
            curves.set_log_step(log_step)

    def action_next_metric(self) -> None:
        """The next series beside accuracy, of those this sweep logs (norm, losses, per task)."""
        logged = (
            {k for r in self.state.runs for k, v in r.final.items() if v is not None}
            if self.state
            else set()
        )
        names = [
            n
            for n in series_names()
            if n not in ("train_acc", "val_acc") and (n in logged or n == "norm")
        ]
        self.metric = names[(names.index(self.metric) + 1) % len(names)]

    def watch_metric(self, metric: str) -> None:
        self.notify(f"curves: {series_label(metric)}")
        for curves in self.query(Curves):
            curves.set_metric(metric)

    def action_sort(self) -> None:
        """The next column, ascending (S reverses): as htop and k9s sort."""
        self.descending = False
        self.sort_column = (self.sort_column + 1) % len(RUN_COLUMNS)

    def action_reverse(self) -> None:
        self.descending = not self.descending

    def watch_sort_column(self) -> None:
        self._sorted()

    def watch_descending(self) -> None:
        self._sorted()

    def _sorted(self) -> None:
        """The header marks the sort column and its direction."""
        table = self.query_one("#run-table", DataTable)
        table.clear(columns=True)  # a column's label set in place is not redrawn
        for i, col in enumerate(RUN_COLUMNS):
            mark = (" v" if self.descending else " ^") if i == self.sort_column else ""
            table.add_column(Text(col + mark), key=col)
        self.table_rows = {}
        if self.state is not None:
            self._fill_table(self.state.runs)

    def action_filter(self) -> None:
        self.query_one(TabbedContent).active = "runs"
        self.query_one("#filter", Input).focus()

    def action_back(self) -> None:
        """Escape: out of the filter (cleared), else back to the list."""
        field = self.query_one("#filter", Input)
        if field.has_focus:
            field.value = ""
            self.query_one("#run-table").focus()
        else:
            self.app.pop_screen()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.query_one("#run-table").focus()  # enter keeps the filter and goes to its runs

    def action_export(self) -> None:
        self.app.export_sweep(self.sweep_id)  # says where, or why not


def _worker_line(w: Worker) -> str:
    rate = f"{w.steps_per_sec:.0f} steps/s" if w.steps_per_sec else ""
    where = f"cohort {w.cohort_id} step {w.step}/{w.cohort_steps}" if w.cohort_id else "waiting"
    device = f"{w.device} on {w.node}" if w.node else w.device  # a Ray worker's node
    return (
        f"worker {w.id} {device}: {where} {rate} (heartbeat {time.time() - w.heartbeat:.0f}s ago)"
    )


def _cells(r: Run) -> tuple:
    status = "stopped" if r.status == "queued" and r.step else r.status  # resumes from there
    return (r.key, status, str(r.step), _fmt(r.value("train_acc")), _fmt(r.value("val_acc")),
            _fmt(r.value("norm"), 1), (r.error if r.status == "failed" else r.short_label) or "")  # fmt: skip


def _sort_key(run: Run, column: str, descending: bool = False):
    # Keys sort in grid order (d=8 before d=16), which the run id keeps.
    values = {"key": run.id, "status": run.status, "step": run.step, "train": run.value("train_acc"),
              "val": run.value("val_acc"), "norm": run.value("norm"), "label": run.label}  # fmt: skip
    value = values[column]
    if value is None:  # last either way
        return (1, 0)
    if isinstance(value, str):  # reversed by its characters' codes
        value = tuple(-ord(ch) for ch in value.lower()) + (1,) if descending else value.lower()
        return (0, value)
    return (0, -value if descending else value)


def _fmt(value, digits: int = 3) -> str:
    return "" if value is None else f"{value:.{digits}f}"
