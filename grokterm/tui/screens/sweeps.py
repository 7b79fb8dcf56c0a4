"""Every sweep in the database with its progress: open, resume, stop."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header

COLUMNS = ("id", "name", "scale", "runs", "done", "diverged", "running", "created")


class SweepsScreen(Screen):
    BINDINGS = [
        Binding("enter", "open", "open"),
        Binding("r", "resume", "resume"),
        Binding("x", "stop", "stop workers"),
        Binding("escape", "app.pop_screen", "back"),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(id="sweeps", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.title, self.sub_title = "grokterm", "sweeps"
        table = self.query_one(DataTable)
        for col in COLUMNS:
            table.add_column(col, key=col)
        self.refresh_rows()
        self.set_interval(1.0, self.refresh_rows)

    def refresh_rows(self) -> None:
        self.run_worker(self._read, thread=True, exclusive=True, group="sweeps")

    def _read(self) -> None:
        rows = self.app.store.sweeps()
        self.app.call_from_thread(self._show, rows)

    def _show(self, rows: list[dict]) -> None:
        table = self.query_one(DataTable)
        keep = table.cursor_row
        table.clear()
        for s in reversed(rows):
            table.add_row(
                *(str(s[c] if s[c] is not None else 0) for c in COLUMNS), key=str(s["id"])
            )
        if table.row_count:
            table.move_cursor(row=min(keep, table.row_count - 1))

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
