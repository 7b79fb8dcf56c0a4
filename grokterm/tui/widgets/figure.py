"""A paper figure with its claims, computed in a thread worker from a read-only
connection and handed back in a message; a figure that cannot be made says why.
`e` writes the figure last drawn for a paper (grokterm.paper), with its claims."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rich.console import Group
from rich.text import Text
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import Static

from grokterm.figures import claims_table
from grokterm.presets import PresetError
from grokterm.report import Report, ReportError
from grokterm.store import Store

Make = Callable[[Store, tuple[int, int]], Report]  # a report from a store, at a size


class FigureView(VerticalScroll, can_focus=True):
    BINDINGS = [Binding("e", "write", "write figure")]

    class Ready(Message):
        def __init__(self, body, shown: Report | None = None):
            super().__init__()
            self.body, self.shown = body, shown

    def __init__(self, stem: str = "figure", **kwargs):
        super().__init__(**kwargs)
        self.stem = stem  # the written figure's file name, without its suffix
        self.shown: Report | None = None  # the figure last drawn

    def compose(self):
        yield Static("drawing ...", id="figure-view")

    def draw(self, make: Make) -> None:
        # Within the scrollbar (a line as wide as the view would wrap) and under the title
        # and notes above it, so that its axes show without scrolling.
        size = (max(self.size.width - 4, 40), min(max(self.size.height - 5, 10), 30))
        self.app.in_thread(
            lambda: self._draw(make, size), "drawing the figure", f"figure-{id(self)}"
        )

    def _draw(self, make: Make, size: tuple[int, int]) -> None:
        with self.app.reader() as store:
            try:
                shown = make(store, size)
            except (ReportError, PresetError) as err:
                self.post_message(self.Ready(f"cannot draw this figure: {err}"))
                return
        lines = [Text(line) for line in [shown.title, *shown.notes] if line]
        parts = [*lines, Text.from_ansi(shown.figure)]
        if shown.claims:
            parts.append(claims_table(shown.claims))
        self.post_message(self.Ready(Group(*parts), shown))

    def on_figure_view_ready(self, message: Ready) -> None:
        self.shown = message.shown or self.shown
        self.query_one("#figure-view", Static).update(message.body)

    def action_write(self) -> None:
        """The figure as a PNG, with its claims as Markdown, in the working folder."""
        if self.shown is None:
            self.notify("nothing drawn yet to write", severity="warning")
            return
        shown, path = self.shown, Path.cwd() / f"{self.stem}.png"
        self.app.in_thread(lambda: self._write(shown, path), "writing the figure",
                           f"write-{id(self)}")  # fmt: skip

    def _write(self, shown: Report, path: Path) -> None:
        from grokterm import paper

        try:
            figure, claims = paper.write(shown, path)
        except (paper.PaperError, OSError) as err:
            self.notify(f"figure not written: {err}", severity="error", timeout=10)
            return
        self.notify(f"wrote the figure to {figure} and its claims to {claims}")
