"""A paper figure with its claims, computed in a thread worker from a read-only
connection and handed back in a message; a figure that cannot be made says why."""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Group
from rich.text import Text
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import Static

from grokterm.figures import claims_table
from grokterm.presets import PresetError
from grokterm.report import Report, ReportError
from grokterm.store import Store

Make = Callable[[Store, tuple[int, int]], Report]  # a report from a store, at a size


class FigureView(VerticalScroll, can_focus=True):
    class Ready(Message):
        def __init__(self, body):
            super().__init__()
            self.body = body

    def compose(self):
        yield Static("drawing ...", id="figure-view")

    def draw(self, make: Make) -> None:
        size = (max(self.size.width - 2, 40), min(max(self.size.height - 2, 10), 30))
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
        self.post_message(self.Ready(Group(*parts)))

    def on_figure_view_ready(self, message: Ready) -> None:
        self.query_one("#figure-view", Static).update(message.body)
