"""A screen that reads the store every POLL_S seconds while it is shown, and not at
all while it is hidden (another mode, or a screen pushed over it)."""

from __future__ import annotations

from textual.screen import Screen
from textual.timer import Timer

POLL_S = 1.0


class PollingScreen(Screen):
    READING = "reading the store"  # what a failed read's notification says it was doing

    def __init__(self):
        super().__init__()
        self.timer: Timer | None = None
        self.reads = 0  # polls made: a hidden screen makes none

    def on_screen_resume(self) -> None:
        if self.timer is None:
            self.timer = self.set_interval(POLL_S, self.poll)
        self.timer.resume()
        self.poll()

    def on_screen_suspend(self) -> None:
        if self.timer is not None:
            self.timer.pause()

    def poll(self) -> None:
        self.reads += 1
        self.app.in_thread(self.read, self.READING, f"poll-{id(self)}")

    def read(self) -> None:
        """In a thread: read what the screen shows and post it as a message."""
        raise NotImplementedError
