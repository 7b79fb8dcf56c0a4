"""The phase map: one cell per (model size, data size), coloured by the seeds'
majority label, filling in as runs finish; `*` marks cells whose seeds disagree."""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget

from grokterm.analysis import aggregate
from grokterm.records import Run

STYLE = {  # label -> (letter, style)
    "progression": ("P", "bold black on #5fafff"),
    "ungrokking": ("U", "bold white on #d75f5f"),
    "grokking": ("G", "bold black on #5fd75f"),
    "semi-grokking": ("S", "bold black on #ffd75f"),
    "comprehension": ("C", "bold black on #87d7d7"),
    "not learned": ("N", "bold white on #6c6c6c"),
    "collapsed": ("X", "bold white on #af5fd7"),
}
CELL = 5  # characters per cell


def axes(runs: list[Run]) -> tuple[str | None, str | None]:
    """Rows and columns: model size by data size where the sweep varies them."""
    keys = {k for r in runs for k in r.grid if k != "seed"}
    rows = "d" if "d" in keys else None
    cols = "n_train" if "n_train" in keys else None
    others = iter(k for k in sorted(keys) if k not in (rows, cols))
    return rows or next(others, None), cols or next(others, None)


class PhaseMap(Widget, can_focus=True):
    BINDINGS = [
        Binding("up", "move(-1, 0)", "up", show=False),
        Binding("down", "move(1, 0)", "down", show=False),
        Binding("left", "move(0, -1)", "left", show=False),
        Binding("right", "move(0, 1)", "right", show=False),
        Binding("enter", "open", "curves of cell"),
    ]
    cursor: reactive[tuple[int, int]] = reactive((0, 0))

    class CellSelected(Message):
        """Enter on a cell: open its runs' curves."""

        def __init__(self, run_ids: list[int], title: str):
            super().__init__()
            self.run_ids, self.title = run_ids, title

    class CellHighlighted(Message):
        """The cursor moved onto a cell: preview its runs' curves."""

        def __init__(self, run_ids: list[int], title: str):
            super().__init__()
            self.run_ids, self.title = run_ids, title

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.runs: list[Run] = []
        self.row_key, self.col_key = None, None
        self.row_values: list = []
        self.col_values: list = []
        self.cells: dict[tuple, dict] = {}  # (row value, col value) -> {"point", "runs"}

    def update_runs(self, runs: list[Run]) -> None:
        self.runs = runs
        self.row_key, self.col_key = axes(runs)
        value = lambda r, k: r.grid.get(k) if k else None  # noqa: E731
        self.row_values = sorted({value(r, self.row_key) for r in runs}, key=_order)
        self.col_values = sorted({value(r, self.col_key) for r in runs}, key=_order)
        self.cells = {}
        for r in runs:
            cell = self.cells.setdefault(
                (value(r, self.row_key), value(r, self.col_key)), {"runs": []}
            )
            cell["runs"].append(r)
        for cell in self.cells.values():
            done = [r for r in cell["runs"] if r.status == "done"]
            points = aggregate(done)
            cell["point"] = points[0] if len(points) == 1 else None
        self.refresh(layout=True)

    def get_content_height(self, container, viewport, width) -> int:
        return len(self.row_values) + 4

    def render(self) -> Text:
        text = Text()
        if not self.runs:
            return Text("no runs yet")
        text.append(f"{self.row_key or '':>7} \\ {self.col_key or ''}\n", style="dim")
        text.append(" " * 8 + "".join(f"{_short(c):>{CELL}}" for c in self.col_values) + "\n")
        for i, rv in enumerate(self.row_values):
            text.append(f"{_short(rv):>7} ")
            for j, cv in enumerate(self.col_values):
                text.append_text(self._cell(self.cells.get((rv, cv)), (i, j) == self.cursor))
            text.append("\n")
        legend = "  ".join(f"{letter} {label}" for label, (letter, _) in STYLE.items())
        text.append(legend + "  . running  * seeds disagree", style="dim")
        return text

    def _cell(self, cell: dict | None, selected: bool) -> Text:
        if cell is None:
            return Text(" " * CELL)
        point = cell["point"]
        if point is None or not point.labels:
            running = any(r.status == "running" for r in cell["runs"])
            body, style = (" .  " if running else "    "), "on #303030"
        else:
            letter, style = STYLE.get(point.label, ("?", ""))
            body = f" {letter}{'*' if not point.agree else ' '} "
        if selected:
            style += " reverse"
        return Text(body, style=style) + Text(" ")

    def action_move(self, dr: int, dc: int) -> None:
        if self.row_values and self.col_values:
            r, c = self.cursor
            self.cursor = (min(max(r + dr, 0), len(self.row_values) - 1),
                           min(max(c + dc, 0), len(self.col_values) - 1))  # fmt: skip

    def watch_cursor(self) -> None:
        self.refresh()
        run_ids, title = self.selected_cell()
        if run_ids:
            self.post_message(self.CellHighlighted(run_ids, title))

    def selected_cell(self) -> tuple[list[int], str]:
        if not self.row_values or not self.col_values:
            return [], ""
        r, c = self.cursor
        rv, cv = self.row_values[r], self.col_values[c]
        cell = self.cells.get((rv, cv), {"runs": []})
        title = " ".join(f"{k}={v}" for k, v in ((self.row_key, rv), (self.col_key, cv)) if k)
        return [x.id for x in cell["runs"]], title

    def action_open(self) -> None:
        run_ids, title = self.selected_cell()
        if run_ids:
            self.post_message(self.CellSelected(run_ids, title))


def _order(value):
    return (value is None, value if isinstance(value, (int, float)) else str(value))


def _short(value) -> str:
    return "" if value is None else str(value)[: CELL - 1]
