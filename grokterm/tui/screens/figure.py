"""A figure drawn from other sweeps (fig 1's zones, from fig 3's and fig 4's), with
the claims checked on them: what `grokterm show presets/fig1.toml` prints."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Header

from grokterm.export import safe_name
from grokterm.presets import Preset
from grokterm.report import report
from grokterm.tui.widgets.figure import FigureView


class FigureScreen(Screen):
    BINDINGS = [Binding("escape", "app.pop_screen", "back")]

    def __init__(self, preset: Preset):
        super().__init__()
        self.preset = preset

    def compose(self) -> ComposeResult:
        yield Header()
        yield FigureView(safe_name(self.preset.name), id="figure-scroll")
        yield Footer()

    def on_mount(self) -> None:
        self.title, self.sub_title = "grokterm", self.preset.title
        view = self.query_one(FigureView)
        view.focus()
        # drawn once laid out: the plot takes the view's size
        self.call_after_refresh(
            view.draw, lambda store, size: report(store, self.preset, None, (), size)
        )
