"""The phase map: one cell per (model size, data size), filling in as runs finish.
Coloured by the seeds' majority label (`*` marks cells whose seeds disagree), or by a
number: a series' final value or the step the circuit formed or softmax collapse
began (the mean over the seeds that reached it), on a
colour scale from the map's lowest value to its highest (log for a log series)."""

from __future__ import annotations

import math

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget

from grokterm.analysis import aggregate
from grokterm.records import Run
from grokterm.series import SERIES
from grokterm.wording import wrap

STYLE = {  # label -> (letter, style)
    "progression": ("P", "bold black on #5fafff"),
    "ungrokking": ("U", "bold white on #d75f5f"),
    "grokking": ("G", "bold black on #5fd75f"),
    "semi-grokking": ("S", "bold black on #ffd75f"),
    "comprehension": ("C", "bold black on #87d7d7"),
    "not learned": ("N", "bold white on #6c6c6c"),
    "collapsed": ("X", "bold white on #af5fd7"),
}
CELL = 5  # characters per cell, at the least; a wider map has wider cells
WIDE_CELL = 10  # at the most
VALUED = 9  # from this width a label's cell also shows the seeds' mean validation accuracy
EMPTY = "#d0d0d0 on #303030"  # ink of its own: reversed under the cursor, it still reads
LABEL = "label"
# the steps a run's label records, by what a person calls them (records.Dynamics)
STEPS = {"circuit_step": "step the circuit formed", "collapse_step": "step of softmax collapse"}
RAMP = ["#440154", "#3b528b", "#21918c", "#5ec962", "#fde725"]  # viridis: low -> high


def colourings(runs: list[Run]) -> list[str]:
    """What the map can be coloured by in this sweep: the label, then each step and each
    series some finished run has a value of."""
    done = [r for r in runs if r.status == "done"]
    steps = [k for k in STEPS if any(_value(r, k) is not None for r in done)]
    logged = [k for k in SERIES if any(r.value(k) is not None for r in done)]
    return [LABEL, *steps, *logged]


def _value(run: Run, key: str) -> float | None:
    if key in STEPS:
        return getattr(run.info, key, None) if run.info else None
    return run.value(key)


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
        Binding("c", "next_colour", "colour by"),
    ]
    cursor: reactive[tuple[int, int]] = reactive((0, 0))
    colour: reactive[str] = reactive(LABEL)  # LABEL, a key of STEPS or a series

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
        self.values: dict[tuple, float | None] = {}  # each cell's value of the colouring
        self.scale: tuple[float, float] | None = None  # their range on the colouring's axis

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
            cell["done"] = done
        self._colour_cells()
        self.refresh(layout=True)

    def action_next_colour(self) -> None:
        """Colour by the next of what this sweep's finished runs have values of."""
        options = colourings(self.runs)
        at = options.index(self.colour) if self.colour in options else -1
        self.colour = options[(at + 1) % len(options)]

    def watch_colour(self) -> None:
        self._colour_cells()
        self.refresh()  # (the legend names the colouring)

    def _colour_cells(self) -> None:
        """Each cell's value and the scale, once per change of runs or colouring (a
        render, at every cursor move, only reads them)."""
        if self.colour == LABEL:
            self.values, self.scale = {}, None
            return
        self.values = {key: self.cell_value(cell) for key, cell in self.cells.items()}
        self.scale = self._scale()

    def cell_value(self, cell: dict) -> float | None:
        """The seeds' mean of what the map is coloured by, over the cell's finished runs."""
        values = [v for r in cell["done"] if (v := _value(r, self.colour)) is not None]
        values = [v for v in values if math.isfinite(v)]
        return sum(values) / len(values) if values else None

    def _scale(self) -> tuple[float, float] | None:
        """The lowest and highest cell value, on the colouring's axis (log10 for a log
        series); None where no cell has one."""
        values = [self._axis(v) for v in self.values.values() if v is not None]
        values = [v for v in values if not math.isnan(v)]
        return (min(values), max(values)) if values else None

    def _axis(self, value: float) -> float:
        series = SERIES.get(self.colour)
        return series.shown(value) if series else value

    def get_content_height(self, container, viewport, width) -> int:
        return 2 + len(self.row_values) + len(self._legend(width).split("\n"))

    def cell_width(self, width: int | None = None) -> int:
        """The cells share the width the map has, within CELL..WIDE_CELL characters."""
        width = self.content_size.width if width is None else width
        room = (width - 8) // max(len(self.col_values), 1)
        return min(max(room, CELL), WIDE_CELL)

    def render(self) -> Text:
        text = Text()
        if not self.runs:
            return Text("no runs yet")
        width = self.cell_width()
        text.append(f"{self.row_key or '':>7} \\ {self.col_key or ''}\n", style="dim")
        text.append(" " * 8 + "".join(f" {_short(c, width):<{width - 1}}" for c in self.col_values))
        for i, rv in enumerate(self.row_values):
            text.append(f"\n{_short(rv, 8):>7} ")
            for j, cv in enumerate(self.col_values):
                text.append_text(self._cell((rv, cv), (i, j) == self.cursor, width))
        return text + "\n" + self._legend(self.content_size.width)

    def _legend(self, width: int) -> Text:
        """Under the map, wrapped between its entries."""
        if self.colour == LABEL:
            entries = [f"{letter} {label}" for label, (letter, _) in STYLE.items()]
            entries += [". running", "* seeds disagree", "(c: colour by)"]
            if self.cell_width(width) >= VALUED:
                entries.insert(-1, "number: mean final validation accuracy")
            return Text(wrap(entries, max(width, 20)), style="dim")
        series = SERIES.get(self.colour)
        name = f"final {series.label}" if series else STEPS[self.colour]
        text = Text(f"{name} (seeds' mean): ", style="dim")
        if self.scale is None:
            return text + Text("no finished run has one yet", style="dim")
        lo, hi = (_compact(10**v if series and series.log else v) for v in self.scale)
        text.append(f"{lo} ")
        for colour in RAMP:
            text.append("  ", style=f"on {colour}")
        return text + Text(f" {hi}  -- none", style="dim")

    def _cell(self, key: tuple, selected: bool, width: int = CELL) -> Text:
        cell = self.cells.get(key)
        if cell is None:
            return Text(" " * width)
        point = cell["point"]
        running = any(r.status == "running" for r in cell["runs"])
        if self.colour != LABEL:
            body, style = self._value_cell(key, running)
        elif point is None or not point.labels:
            body, style = (" ." if running else ""), EMPTY
        else:
            letter, style = STYLE.get(point.label, ("?", ""))
            body = f" {letter}{'*' if not point.agree else ' '}"
            if width >= VALUED:
                body += f" {point.mean:.2f}"
        if selected:
            style += " reverse"
        return Text(f"{body:<{width - 1}}", style=style) + Text(" ")

    def _value_cell(self, key: tuple, running: bool) -> tuple[str, str]:
        value = self.values.get(key)
        if value is None:  # nothing finished, or finished without it (a step never reached)
            done = self.cells[key]["done"]
            return (" ." if running else (" --" if done else "")), EMPTY
        at = self._axis(value)
        if self.scale is None or math.isnan(at):
            return f"{_compact(value):>4}", EMPTY
        lo, hi = self.scale
        k = 0 if hi == lo else round((at - lo) / (hi - lo) * (len(RAMP) - 1))
        ink = "black" if k >= 2 else "white"
        return f"{_compact(value):>4}", f"bold {ink} on {RAMP[k]}"

    def action_move(self, dr: int, dc: int) -> None:
        if self.row_values and self.col_values:
            r, c = self.cursor
            self.cursor = (min(max(r + dr, 0), len(self.row_values) - 1),
                           min(max(c + dc, 0), len(self.col_values) - 1))  # fmt: skip

    def watch_cursor(self) -> None:
        self.refresh()
        self.announce()

    def announce(self) -> None:
        """Say which runs the cursor is on (the screen previews their curves)."""
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


def _compact(value: float) -> str:
    """A number in at most four characters: 0.93, 12, 1.5k, 40k, e-5."""
    size = abs(value)
    if size >= 9950:
        return f"{value / 1e3:.0f}k"
    if size >= 1e3:
        return f"{value / 1e3:.1f}k"
    if size >= 10 or value == 0:
        return f"{value:.0f}"
    if size >= 0.01:
        return f"{value:.2f}"[:4]
    return f"e{math.floor(math.log10(size))}"


def _short(value, width: int = CELL) -> str:
    return "" if value is None else str(value)[: width - 1]
