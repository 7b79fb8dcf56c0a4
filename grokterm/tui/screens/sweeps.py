"""Every sweep in the database with its progress: open, resume, stop. Polls only
while it is the screen shown, and touches the table only where a value changed."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Header

from grokterm.records import SweepCounts

COLUMNS = ("id", "name", "scale", "runs", "done", "diverged", "failed", "running", "created")
POLL_S = 1.0


def _cells(c: SweepCounts) -> tuple[str, ...]:
    s = c.sweep
    return (str(s.id), s.name, s.scale, str(c.runs), str(c.done), str(c.diverged), str(c.failed),
            str(c.running), s.created)  # fmt: skip


class SweepsScreen(Screen):
    BINDINGS = [
        Binding("enter", "open", "open"),
        Binding("r", "resume", "resume"),
        Binding("x", "stop", "stop workers"),
    ]

    class Read(Message):
        def __init__(self, rows: list[SweepCounts]):
            super().__init__()
            self.rows = rows

    def __init__(self):
        super().__init__()
        self.timer: Timer | None = None
        self.shown: dict[str, tuple] = {}  # sweep id -> cells, in table order
        self.reads = 0  # polls made: a hidden screen makes none

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(id="sweeps", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.title, self.sub_title = "grokterm", "sweeps"
        table = self.query_one(DataTable)
        for col in COLUMNS:
            table.add_column(col, key=col)

    def on_screen_resume(self) -> None:
        if self.timer is None:
            self.timer = self.set_interval(POLL_S, self.refresh_rows)
        self.timer.resume()
        self.refresh_rows()

    def on_screen_suspend(self) -> None:
        if self.timer is not None:
            self.timer.pause()

    def refresh_rows(self) -> None:
        self.reads += 1
        self.app.in_thread(self._read, "reading the sweeps list", f"sweeps-{id(self)}")

    def _read(self) -> None:
        with self.app.reader() as store:
            self.post_message(self.Read(store.sweeps()))

    def on_sweeps_screen_read(self, message: Read) -> None:
        table = self.query_one(DataTable)
        rows = {str(c.sweep.id): _cells(c) for c in reversed(message.rows)}
        if list(rows) == list(self.shown):
            for key, cells in rows.items():
                for col, old, new in zip(COLUMNS, self.shown[key], cells):
                    if old != new:
                        table.update_cell(key, col, new)
        else:  # a new sweep: the cursor stays on the sweep it was on
            keep = self._selected()
            table.clear()
            for key, cells in rows.items():
                table.add_row(*cells, key=key)
            if table.row_count:
                keys = list(rows)
                table.move_cursor(row=keys.index(str(keep)) if str(keep) in keys else 0)
        self.shown = rows

    def _selected(self) -> int | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        return int(table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.app.open_sweep(int(event.row_key.value))

    def action_open(self) -> None:
        if (sweep_id := self._selected()) is not None:
            self.app.open_sweep(sweep_id)

    def action_resume(self) -> None:
        if (sweep_id := self._selected()) is not None:
            self.app.resume_sweep(sweep_id)

    def action_stop(self) -> None:
        if (sweep_id := self._selected()) is not None:
            self.app.stop_sweep(sweep_id)
