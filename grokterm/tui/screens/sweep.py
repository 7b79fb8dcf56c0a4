"""One sweep, live: progress and workers, the run table, curves of the selected
runs, the phase map, and the paper's figure with its claims.

A timer starts a thread worker that reads what changed (tui.data.read_sweep) and
posts it as a message; the handler updates the widgets on the UI thread."""

from __future__ import annotations

import time

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import Screen
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

from grokterm.tui.data import SweepState, read_sweep
from grokterm.tui.widgets.curves import Curves
from grokterm.tui.widgets.phase_map import PhaseMap

RUN_COLUMNS = ("key", "status", "step", "train", "val", "norm", "label")
POLL_S = 1.0


class SweepScreen(Screen):
    BINDINGS = [
        Binding("1", "tab('runs')", "runs"),
        Binding("2", "tab('curves')", "curves"),
        Binding("3", "tab('phase')", "phase map"),
        Binding("4", "tab('figure')", "figure"),
        Binding("g", "toggle_log", "log step"),
        Binding("e", "export", "export CSV"),
        Binding("s", "sort", "sort"),
        Binding("slash", "filter", "filter", key_display="/"),
        Binding("escape", "app.pop_screen", "back"),
    ]

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
        self.selected: list[int] = []
        self.sort_column = 0
        self.last_refresh_ms = 0.0

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
            with TabPane("Figure", id="figure"), VerticalScroll(id="figure-scroll"):
                yield Static(id="figure-view")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "grokterm"
        table = self.query_one("#run-table", DataTable)
        for col in RUN_COLUMNS:
            table.add_column(col, key=col)
        table.focus()  # arrows and Enter pick a run at once; "/" goes to the filter
        self.poll()
        self.set_interval(POLL_S, self.poll)

    # -- polling ----------------------------------------------------------------------

    def poll(self) -> None:
        self.run_worker(self._read, thread=True, exclusive=True, group="poll")

    def _read(self) -> None:
        start = time.perf_counter()
        state = read_sweep(self.app.store, self.sweep_id, self.selected, self.cursor_rowid)
        self.post_message(self.Updated(state, time.perf_counter() - start))

    def on_sweep_screen_updated(self, message: Updated) -> None:
        start = time.perf_counter()
        state = self.state = message.state
        p = state.progress
        self.sub_title = (
            f"sweep {state.sweep['id']}: {state.sweep['name']} ({state.sweep['scale']})"
        )
        self.query_one(ProgressBar).update(total=max(p["runs"], 1), progress=p["finished"])
        self.query_one("#workers", Static).update(self._workers_line(state))
        self._fill_table(state.runs)
        self.query_one(PhaseMap).update_runs(state.runs)
        # A read that started before the selection or the cursor last changed would
        # add its rows twice or rewind the cursor: only a read from the current one counts.
        if state.run_ids == self.selected and state.since_rowid == self.cursor_rowid:
            self.cursor_rowid = state.last_rowid
            for curves in self.query(Curves):
                curves.add_rows(state.new_metrics)
        self.last_refresh_ms = (time.perf_counter() - start + message.seconds) * 1000

    def _workers_line(self, state: SweepState) -> str:
        p = state.progress
        head = f"{p['finished']} of {p['runs']} runs finished, {p['diverged']} diverged"
        now = time.time()
        lines = [head]
        for w in state.workers:
            rate = f"{w['steps_per_sec']:.0f} steps/s" if w["steps_per_sec"] else ""
            where = (
                f"cohort {w['cohort_id']} step {w['step']}/{w['cohort_steps']}"
                if w["cohort_id"]
                else "waiting"
            )
            lines.append(
                f"worker {w['id']} {w['device']}: {where} {rate} (heartbeat {now - w['heartbeat']:.0f}s ago)"
            )
        return "\n".join(lines)

    def _fill_table(self, runs: list[dict]) -> None:
        """Rebuild the table only when its rows or their order change; otherwise
        update the cells that changed (a 660-run rebuild costs ~75 ms a poll)."""
        table = self.query_one("#run-table", DataTable)
        text = self.query_one("#filter", Input).value.strip().lower()
        shown = [
            r for r in runs if not text or text in f"{r['key']} {r['status']} {r['label']}".lower()
        ]
        shown.sort(key=lambda r: _sort_key(r, RUN_COLUMNS[self.sort_column]))
        rows = {str(r["id"]): _cells(r) for r in shown}
        if list(rows) == list(self.table_rows):
            for key, cells in rows.items():
                for col, old, new in zip(RUN_COLUMNS, self.table_rows[key], cells):
                    if old != new:
                        table.update_cell(key, col, new)
            self.table_rows = rows
            return
        keep = table.cursor_row
        table.clear()
        for key, cells in rows.items():
            table.add_row(*cells, key=key)
        self.table_rows = rows
        if table.row_count:
            table.move_cursor(row=min(keep, table.row_count - 1))

    # -- selection and actions --------------------------------------------------------

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        run_id = int(event.row_key.value)
        run = next(r for r in self.state.runs if r["id"] == run_id)
        self.show_curves([run_id], run["key"])

    def on_phase_map_cell_highlighted(self, event: PhaseMap.CellHighlighted) -> None:
        self.select_runs(event.run_ids, event.title)

    def on_phase_map_cell_selected(self, event: PhaseMap.CellSelected) -> None:
        self.show_curves(event.run_ids, event.title)

    def select_runs(self, run_ids: list[int], title: str) -> None:
        """The runs whose curves both curve views draw; their rows are read anew."""
        names = {r["id"]: r["key"] for r in self.state.runs if r["id"] in run_ids}
        if list(names) == self.selected:
            return
        self.selected = list(names)
        self.cursor_rowid = 0
        self.query_one("#curves-title", Static).update(f"curves: {title}")
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
        if event.pane.id == "figure":
            self.run_worker(self._draw_figure, thread=True, exclusive=True, group="figure")

    def _draw_figure(self) -> None:
        from rich.console import Group
        from rich.text import Text

        from grokterm.claims import check_claims
        from grokterm.figures import claims_table, draw
        from grokterm.presets import PresetError, parse_preset, tomllib

        store, sweep = self.app.store, self.app.store.sweep(self.sweep_id)
        view = self.query_one("#figure-view", Static)
        try:
            preset = parse_preset(tomllib.loads(sweep["toml"]), sweep["preset_path"], sweep["toml"])
        except (PresetError, tomllib.TOMLDecodeError) as e:  # a store from another version
            self.app.call_from_thread(view.update, f"cannot read this sweep's preset: {e}")
            return
        runs = store.runs(self.sweep_id)
        curves = (
            store.run_curves([r["id"] for r in runs][:8]) if preset.plot["kind"] == "curves" else {}
        )
        width, height = max(self.size.width - 4, 40), min(max(self.size.height - 7, 10), 30)
        figure = Text.from_ansi(draw(preset.plot, runs, curves, (width, height)))
        body = Group(figure, claims_table(check_claims(preset.claims, runs)))
        self.app.call_from_thread(view.update, body)

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
        # Every tab focuses a widget of its own: focus left in another tab pulls it back.
        focus = {"runs": "#run-table", "curves": "#curve-plots", "phase": "#phase-map",
                 "figure": "#figure-scroll"}[tab]  # fmt: skip
        self.query_one(focus).focus()

    def action_toggle_log(self) -> None:
        for curves in self.query(Curves):
            curves.toggle_log()

    def action_sort(self) -> None:
        self.sort_column = (self.sort_column + 1) % len(RUN_COLUMNS)
        self.notify(f"sorted by {RUN_COLUMNS[self.sort_column]}")
        if self.state is not None:
            self._fill_table(self.state.runs)

    def action_filter(self) -> None:
        self.query_one(TabbedContent).active = "runs"
        self.query_one("#filter", Input).focus()

    def action_export(self) -> None:
        path = self.app.export_sweep(self.sweep_id)
        self.notify(f"exported to {path}")


def _cells(r: dict) -> tuple:
    return (r["key"], r["status"], str(r["step"]), _fmt(r["train_acc"]), _fmt(r["val_acc"]),
            _fmt(r["norm"], 1), r["label"] or "")  # fmt: skip


def _sort_key(run: dict, column: str):
    # Keys sort in grid order (d=8 before d=16), which the run id keeps.
    values = {"key": run["id"], "train": run["train_acc"], "val": run["val_acc"]}
    value = values.get(column, run.get(column))
    return (value is None, value if not isinstance(value, str) else value.lower())


def _fmt(value, digits: int = 3) -> str:
    return "" if value is None else f"{value:.{digits}f}"
