"""One sweep, live: progress and workers, the run table, curves of the selected
runs, the phase map, and the paper's figure with its claims.

While the screen is shown, a timer starts a thread worker that reads what changed
(tui.data.read_sweep) on its own connection and posts it as a message; the handler
updates the widgets on the UI thread. The selection, the sort column and log step are
reactive state: their watchers redraw what depends on them."""

from __future__ import annotations

import time

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
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

from grokterm import gpu_stats
from grokterm.charts import group_keys, groups
from grokterm.export import safe_name
from grokterm.progress import runs_text, work_text
from grokterm.records import Worker
from grokterm.report import report, stored_preset
from grokterm.series import label as series_label
from grokterm.series import names as series_names
from grokterm.tui.data import SweepState, read_sweep
from grokterm.tui.screens.polling import PollingScreen
from grokterm.tui.screens.run import RunScreen
from grokterm.tui.widgets.curves import Curves
from grokterm.tui.widgets.figure import FigureView
from grokterm.tui.widgets.phase_map import PhaseMap
from grokterm.tui.widgets.run_table import COLUMNS, RunTable

SMOOTHING = (0.0, 0.6, 0.9)  # the EMA factors `z` steps through
WIDE = 120  # columns from which the run table and its curves sit side by side


class SweepScreen(PollingScreen):
    # The footer shows what fits 80 columns; the tabs' keys (1-4, also on the tabs), S,
    # g, m, b, z and e are under ? with the rest.
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
        Binding("b", "next_group", "group by", show=False),
        Binding("z", "next_smoothing", "smooth", show=False),
    ]

    clock = staticmethod(time.time)  # what a heartbeat's age is measured against
    gpu_lines = staticmethod(gpu_stats.read_lines)  # a line per GPU of this machine

    selected: reactive[tuple[int, ...]] = reactive((), init=False)  # runs whose curves are drawn
    sort_column: reactive[int] = reactive(0, init=False)  # index into run_table.COLUMNS
    descending: reactive[bool] = reactive(False, init=False)  # the sort's direction
    log_step: reactive[bool] = reactive(True, init=False)  # curves against log10 step
    metric: reactive[str] = reactive("norm", init=False)  # beside accuracy in the curves
    group: reactive[str | None] = reactive(None, init=False)  # curves grouped (charts.groups)
    smooth: reactive[float] = reactive(0.0, init=False)  # the curves' EMA factor

    class Updated(Message):
        def __init__(self, state: SweepState, seconds: float):
            super().__init__()
            self.state, self.seconds = state, seconds

    def __init__(self, sweep_id: int):
        super().__init__()
        self.sweep_id = sweep_id
        self.state: SweepState | None = None
        self.overlaid: set[int] = set()  # runs chosen with space (else: the one at the cursor)
        self.chosen: list[int] = []  # the runs asked for; `selected` adds their groups' runs
        self.previewed: int | None = None  # the cursor's run whose curves are drawn
        self.cursor_rowid = 0
        self.selection_title = ""
        self.last_refresh_ms = 0.0
        self.figure_at = (-1, 0.0)  # (run-steps done, monotonic time) when last drawn

    def compose(self) -> ComposeResult:
        yield Header()
        yield ProgressBar(id="progress", show_eta=False)
        yield Static(id="workers")
        with TabbedContent(initial="runs"):
            with TabPane("Runs", id="runs"), Horizontal(id="runs-row"):
                with Vertical(id="runs-left"):
                    yield Input(placeholder="filter runs (key, status or label)", id="filter")
                    yield RunTable(id="run-table")
                    yield Static(id="table-legend")
                yield Curves(id="side-curves")  # beside the table on a wide terminal
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
        self._sorted()  # the columns, with the sort's mark
        self.query_one(RunTable).focus()  # arrows and Enter pick a run; "/" goes to the filter

    def on_resize(self) -> None:
        self.set_class(self.size.width >= WIDE, "wide")

    # -- polling, only while shown -------------------------------------------------------

    READING = "reading the sweep"

    def read(self) -> None:
        start = time.perf_counter()
        with self.app.reader() as store:
            state = read_sweep(store, self.sweep_id, self.selected, self.cursor_rowid)
        state.gpus = self.gpu_lines()
        self.post_message(self.Updated(state, time.perf_counter() - start))

    def on_sweep_screen_updated(self, message: Updated) -> None:
        start = time.perf_counter()
        first = self.state is None
        state = self.state = message.state
        p = state.progress
        self.sub_title = f"sweep {state.sweep.id}: {state.sweep.name} ({state.sweep.scale})"
        # work done, in run-steps: a sweep of long cohorts moves as it trains
        self.query_one(ProgressBar).update(total=max(p.run_steps, 1), progress=p.run_steps_done)
        self.query_one("#workers", Static).update(self._workers_line(state))
        self._fill_table()
        self.query_one(PhaseMap).update_runs(state.runs)
        self._figure_live(state)
        if first:  # the curves follow the cursor's run until runs are overlaid
            self._preview()
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
        workers = [_worker_line(w, self.clock()) for w in state.workers]
        return "\n".join([head, *workers, *state.gpus, *errors])

    def _fill_table(self) -> None:
        table = self.query_one(RunTable)
        table.fill(self.state.runs, self.query_one("#filter", Input).value)
        legend = table.legend(self.state.runs)
        self.query_one("#table-legend", Static).update(legend)
        self.query_one("#table-legend").display = bool(legend)

    # -- selection and actions --------------------------------------------------------

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter: the run in detail."""
        self.app.push_screen(RunScreen(self.sweep_id, int(event.row_key.value)))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if self.query_one(TabbedContent).active == "runs":  # (a rebuild elsewhere: not asked)
            self._preview()

    def _preview(self, again: bool = False) -> None:
        """With no runs overlaid, the curves are those of the run under the table's cursor
        (drawn anew only when that run changes, or `again`)."""
        run_id = self.query_one(RunTable).run_at_cursor()
        if self.state is None or self.overlaid or run_id is None:
            return
        if again or run_id != self.previewed:
            self.previewed = run_id
            self.select_runs([run_id], next(r.key for r in self.state.runs if r.id == run_id))

    def _overlay(self) -> None:
        keys = [r.key for r in self.state.runs if r.id in self.overlaid]
        self.select_runs(
            list(self.overlaid), ", ".join(keys) if len(keys) < 3 else f"{len(keys)} runs"
        )

    def action_toggle_run(self) -> None:
        """Space: the run under the cursor joins the overlaid curves, or leaves them."""
        run_id = self.query_one(RunTable).run_at_cursor()
        if self.state is None or run_id is None:
            return
        self.overlaid ^= {run_id}
        if self.overlaid:
            self._overlay()
        else:
            self._preview(again=True)
        self.notify(f"curves: {len(self.overlaid)} run(s) overlaid (2 shows them)")

    def on_phase_map_cell_highlighted(self, event: PhaseMap.CellHighlighted) -> None:
        self.previewed = None  # back on the table, its cursor's run is drawn again
        self.select_runs(event.run_ids, event.title)

    def on_phase_map_cell_selected(self, event: PhaseMap.CellSelected) -> None:
        self.show_curves(event.run_ids, event.title)

    def select_runs(self, run_ids: list[int], title: str) -> None:
        """The runs whose curves the curve views draw: these, and while the curves are
        grouped, every run of their groups (one run's seeds, for its band)."""
        self.chosen, self.selection_title = list(run_ids), title
        wanted = set(run_ids)
        if self.group is not None:
            wanted = {r.id for _, group in groups(self.state.runs, self.group)
                      if wanted & {m.id for m in group} for r in group}  # fmt: skip
        self.selected = tuple(r.id for r in self.state.runs if r.id in wanted)

    def watch_selected(self, selected: tuple[int, ...]) -> None:
        """A new selection: its points are read anew from the first."""
        self.cursor_rowid = 0
        self.query_one("#curves-title", Static).update(f"curves: {self.selection_title}")
        for curves in self.query(Curves):
            curves.show_runs(self.state.runs, selected)
        self.poll()

    def show_curves(self, run_ids: list[int], title: str) -> None:
        self.select_runs(run_ids, title)
        self.query_one(TabbedContent).active = "curves"
        self.query_one("#curve-plots").focus()  # else the focused table pulls its tab back

    def on_input_changed(self, event: Input.Changed) -> None:
        if self.state is not None:
            self._fill_table()

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id == "figure":  # once laid out: the plot takes the pane's size
            self.call_after_refresh(self._draw_figure)
        elif event.pane.id == "phase":  # the curves of the cell under the cursor, at once
            self.query_one(PhaseMap).announce()
        elif event.pane.id == "runs":  # the table's choice again, not a phase map cell's
            if self.overlaid:
                self._overlay()
            else:
                self._preview()

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

    # -- how the curves are drawn: every curve view alike ---------------------------------

    def _set_view(self, **changes) -> None:
        for curves in self.query(Curves):
            curves.set_view(**changes)

    def action_toggle_log(self) -> None:
        self.log_step = not self.log_step

    def watch_log_step(self, log_step: bool) -> None:
        self._set_view(log_step=log_step)

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
        self._set_view(metric=metric)

    def action_next_group(self) -> None:
        """Each run alone, the seeds of a grid point together, then by each grid key."""
        options = group_keys(self.state.runs if self.state else [])
        at = options.index(self.group) if self.group in options else 0
        self.group = options[(at + 1) % len(options)]

    def watch_group(self, group: str | None) -> None:
        said = "each run alone" if group is None else f"grouped by {group} (mean, 95% band)"
        self.notify(f"curves: {said}")
        self._set_view(group=group)
        if self.state is not None:
            self.select_runs(self.chosen, self.selection_title)  # their groups' runs too

    def action_next_smoothing(self) -> None:
        self.smooth = SMOOTHING[(SMOOTHING.index(self.smooth) + 1) % len(SMOOTHING)]

    def watch_smooth(self, smooth: float) -> None:
        self.notify(f"curves: EMA {smooth:g}" if smooth else "curves: not smoothed")
        self._set_view(smooth=smooth)

    # -- the run table --------------------------------------------------------------------

    def action_sort(self) -> None:
        """The next column, ascending (S reverses): as htop and k9s sort."""
        self.descending = False
        self.sort_column = (self.sort_column + 1) % len(COLUMNS)

    def action_reverse(self) -> None:
        self.descending = not self.descending

    def watch_sort_column(self) -> None:
        self._sorted()

    def watch_descending(self) -> None:
        self._sorted()

    def _sorted(self) -> None:
        runs = self.state.runs if self.state else []
        text = self.query_one("#filter", Input).value
        self.query_one(RunTable).sort_by(self.sort_column, self.descending, runs, text)

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


def _worker_line(w: Worker, now: float) -> str:
    rate = f"{w.steps_per_sec:.0f} steps/s" if w.steps_per_sec else ""
    where = f"cohort {w.cohort_id} step {w.step}/{w.cohort_steps}" if w.cohort_id else "waiting"
    device = f"{w.device} on {w.node}" if w.node else w.device  # a Ray worker's node
    return f"worker {w.id} {device}: {where} {rate} (heartbeat {now - w.heartbeat:.0f}s ago)"
