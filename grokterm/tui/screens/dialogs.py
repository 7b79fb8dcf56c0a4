"""Modal screens: the key map, and what to do with running workers on quit."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

KEYS = """\
[b]everywhere[/b]
  p  presets          w  sweeps          ?  this help
  ctrl+p  command palette (themes too)   q  quit (asks about workers)

[b]presets[/b]   up/down pick, l launch (at the chosen scale)
[b]sweeps[/b]    enter open, r resume, x stop workers

[b]sweep[/b]
  1 runs  2 curves  3 phase map  4 figure and claims
  enter on a run: its detail     space: overlay its curves
  enter on a phase-map cell: its curves
  g  log / linear step      m  series beside accuracy
  b  group runs (mean, 95% band)   z  smooth (EMA)
  c  colour the phase map: label, steps, series
  s  sort by the next column   S  reverse the sort
  /  filter runs (enter: keep it, escape: clear it)
  e  export CSV (figure tab: the figure as PNG)
  escape  back
"""


class HelpScreen(ModalScreen):
    BINDINGS = [Binding("escape,q,question_mark", "app.pop_screen", "close")]

    def compose(self) -> ComposeResult:
        with Vertical(id="help"):
            yield Static(KEYS)
            yield Button("Close", id="close")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.app.pop_screen()


class QuitScreen(ModalScreen[str]):
    """Workers keep training without the app; ask whether they should."""

    BINDINGS = [Binding("escape", "choose('cancel')", "cancel")]

    def __init__(self, running: int):
        super().__init__()
        self.running = running

    def compose(self) -> ComposeResult:
        with Grid(id="quit"):
            yield Static(
                f"{self.running} worker(s) are training. They can go on without the app.",
                id="question",
            )
            yield Button("Leave running", id="leave", variant="primary")
            yield Button("Stop them", id="stop", variant="error")
            yield Button("Cancel", id="cancel")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id)

    def action_choose(self, choice: str) -> None:
        self.dismiss(choice)
