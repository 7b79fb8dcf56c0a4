"""The run table: a sweep's runs with their status, step, final accuracies, norm and
label, filtered and sorted (as htop and k9s sort), each column as wide as its longest
value. Where the table is narrower than its values, nothing is cut: labels shrink to
their letter first, then keys to their values, and the legend under the table says so."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from grokterm.records import Run
from grokterm.tui.widgets.phase_map import STYLE
from grokterm.tui.widgets.tables import sync_table
from grokterm.wording import wrap

COLUMNS = ("key", "status", "step", "train", "val", "norm", "label")
MARKS = ["+ still rising", "- still falling", "? uncertain"]


class RunTable(DataTable):
    def __init__(self, **kwargs):
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.cells_shown: dict[str, tuple] = {}  # run id -> the cells shown, in table order
        self.short = (False, False)  # labels as letters, keys as values
        self.sort_column, self.descending = 0, False

    def sort_by(self, column: int, descending: bool, runs: list[Run], text: str) -> None:
        """The header marks the sort column and its direction; the cursor stays on its run."""
        keep = self.run_at_cursor()
        self.sort_column, self.descending = column, descending
        self.clear(columns=True)  # a column's label set in place is not redrawn
        for i, col in enumerate(COLUMNS):
            mark = (" v" if descending else " ^") if i == column else ""
            self.add_column(Text(col + mark), key=col)
        self.cells_shown = {}
        self.fill(runs, text, keep)

    def fill(self, runs: list[Run], text: str, keep: int | None = None) -> None:
        """The runs the filter text keeps, in the sort column's order, the cursor on the
        run it was on (`keep`: the one it was on before a rebuild)."""
        keep = self.run_at_cursor() if keep is None else keep
        text = text.strip().lower()
        shown = [r for r in runs if not text or text in f"{r.key} {r.status} {r.label}".lower()]
        shown.sort(key=lambda r: _sort_key(r, COLUMNS[self.sort_column], self.descending))
        short, rows = self._fit(shown)
        if short != self.short:  # columns only widen in place: narrower ones are rebuilt
            self.short = short
            self.sort_by(self.sort_column, self.descending, runs, text)
            return
        at = None if keep is None else str(keep)
        self.cells_shown = sync_table(self, COLUMNS, self.cells_shown, rows, keep=at)

    def _fit(self, runs: list[Run]) -> tuple[tuple[bool, bool], dict[str, tuple]]:
        """The first way of writing the cells that fits the table's width, and the cells."""
        room = (self.size.width or self.app.size.width) - 4  # (a scrollbar, a margin)
        for short in ((False, False), (True, False), (True, True)):
            rows = {str(r.id): _cells(r, *short) for r in runs}
            if sum(_widths(rows.values(), self.sort_column)) <= room:
                break
        return short, rows

    def legend(self, runs: list[Run]) -> str:
        """What the shortened cells stand for, wrapped between entries ("" where nothing
        is shortened)."""
        letters, values = self.short
        entries = []
        if letters:
            seen = {r.label for r in runs if r.label}
            entries += [f"{s[0]} {label}" for label, s in STYLE.items() if label in seen]
            marked = {r.short_label[-1] for r in runs if r.short_label and r.label}
            entries += [m for m in MARKS if m[0] in marked]
        if values and runs:
            entries.append("key: " + " ".join(runs[0].grid))
        return wrap(entries, max(self.size.width, 20))

    def run_at_cursor(self) -> int | None:
        if not self.row_count:
            return None
        return int(self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value)


def _widths(rows, sort_column: int) -> list[int]:
    """Each column as drawn: its longest cell, or its header with the sort's mark, padded."""
    heads = [len(c) + 2 * (i == sort_column) for i, c in enumerate(COLUMNS)]
    return [max([head, *(len(row[i]) for row in rows)]) + 2 for i, head in enumerate(heads)]


def _cells(r: Run, letters: bool = False, values: bool = False) -> tuple:
    status = "stopped" if r.status == "queued" and r.step else r.status  # resumes from there
    label = (r.error if r.status == "failed" else r.short_label) or ""
    if letters and r.status != "failed" and r.label in STYLE:
        label = STYLE[r.label][0] + label[len(r.label) :]  # the letter, and its mark
    key = " ".join(str(v) for v in r.grid.values()) if values else r.key
    return (key, status, str(r.step), _fmt(r.value("train_acc")), _fmt(r.value("val_acc")),
            _fmt(r.value("norm"), 1), label)  # fmt: skip


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
