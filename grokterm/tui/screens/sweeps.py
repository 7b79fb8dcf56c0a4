"""Every sweep in the database with its progress: open, resume, stop. Polls only
while it is the screen shown, and touches the table only where a value changed."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Footer, Header

from grokterm.records import SweepCounts
from grokterm.tui.screens.polling import PollingScreen
from grokterm.tui.widgets.tables import sync_table

COLUMNS = ("id", "name", "scale", "status", "runs", "done", "diverged", "failed", "running",
           "created")  # fmt: skip


def _cells(c: SweepCounts) -> tuple[str, ...]:
    s = c.sweep
    return (str(s.id), s.name, s.scale, c.status, str(c.runs), str(c.done), str(c.diverged),
            str(c.failed), str(c.running), s.created)  # fmt: skip


class SweepsScreen(PollingScreen):
    BINDINGS = [
        Binding("enter", "open", "open"),
        Binding("r", "resume", "resume"),
        Binding("x", "stop", "stop workers"),
        Binding("escape", "nothing", show=False),  # the top level: nothing to go back to
    ]

    class Read(Message):
        def __init__(self, rows: list[SweepCounts]):
            super().__init__()
            self.rows = rows

    READING = "reading the sweeps list"

    def __init__(self):
        super().__init__()
        self.shown: dict[str, tuple] = {}  # sweep id -> cells, in table order

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(id="sweeps", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.title, self.sub_title = "grokterm", "sweeps"
        table = self.query_one(DataTable)
        for col in COLUMNS:
            table.add_column(col, key=col)

    def read(self) -> None:
        with self.app.reader() as store:
            self.post_message(self.Read(store.sweeps()))

    def on_sweeps_screen_read(self, message: Read) -> None:
        """The sweeps, newest first; a new sweep on top leaves the cursor on its sweep."""
        rows = {str(c.sweep.id): _cells(c) for c in reversed(message.rows)}
        selected = self._selected()
        keep = None if selected is None else str(selected)
        self.shown = sync_table(self.query_one(DataTable), COLUMNS, self.shown, rows, keep)

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

    def action_nothing(self) -> None:
        pass

    def action_stop(self) -> None:
        if (sweep_id := self._selected()) is not None:
            self.app.stop_sweep(sweep_id)
