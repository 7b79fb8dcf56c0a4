"""Pick a preset and a scale, see its size and estimated cost, launch it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Footer, Header, OptionList, Select, Static
from textual.widgets.option_list import Option

from grokterm import sweeps
from grokterm.devices import WorkerSlot, slots_kind
from grokterm.presets import Preset, PresetError, RunSpec, load_preset


def find_presets(directory: Path) -> tuple[list[Preset], list[str]]:
    presets, errors = [], []
    for path in sorted(directory.glob("*.toml"), key=lambda p: (len(p.stem), p.stem)):
        try:
            presets.append(load_preset(path))
        except PresetError as err:
            errors.append(str(err))
    return presets, errors


class PresetsScreen(Screen):
    BINDINGS = [Binding("l", "launch", "launch"), Binding("escape", "app.sweeps", "sweeps")]

    def __init__(self):
        super().__init__()
        self.presets: list[Preset] = []
        self.errors: list[str] = []
        self.slots: list[WorkerSlot] = [WorkerSlot("cpu", 1)]

    def _load(self) -> None:
        self.presets, self.errors = find_presets(self.app.presets_dir)
        with self.app.reader() as store:
            self.swept: dict[str, list[str]] = {}  # preset name -> its sweeps, in words
            for c in store.sweeps():
                self.swept.setdefault(c.sweep.name, []).append(
                    f"#{c.sweep.id} {c.sweep.scale} ({c.status})"
                )
        try:
            self.slots = self.app.slots()
        except ValueError as err:  # a bad --device: said once here, and again on launch
            self.errors.append(str(err))

    def compose(self) -> ComposeResult:
        self._load()  # the app's preset folder and workers are known once mounted
        yield Header()
        with Horizontal():
            yield OptionList(*(self._option(i, p) for i, p in enumerate(self.presets)),
                             id="preset-list")  # fmt: skip
            with Vertical(id="preset-detail"):
                with VerticalScroll(id="preset-scroll"):  # tab to it, arrows scroll it
                    yield Static(id="preset-info")
                with Horizontal(id="launch-row"):
                    yield Select(
                        [("paper", "paper")], id="scale", allow_blank=False, prompt="scale"
                    )
                    yield Button("Launch", id="launch", variant="success")
        yield Footer()

    def _option(self, index: int, preset: Preset) -> Option:
        """Its name and title; a mark where the database has a sweep of it."""
        mark = "*" if preset.name in self.swept else " "
        return Option(f"{mark}{preset.name:<6} {preset.title}", id=str(index))

    def on_mount(self) -> None:
        self.title, self.sub_title = "grokterm", "presets"
        for err in self.errors:
            self.notify(err, severity="error", timeout=10)
        if self.presets:
            self.query_one(OptionList).highlighted = 0
            self.show(0)

    @property
    def current(self) -> Preset | None:
        index = self.query_one(OptionList).highlighted
        return None if index is None or not self.presets else self.presets[index]

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        self.show(int(event.option.id))

    def show(self, index: int) -> None:
        preset = self.presets[index]
        lines = [f"[b]{preset.title}[/b]", f"figure {preset.figure}   file {preset.path}", ""]
        for scale in preset.scale_names:
            at = preset.at_scale(scale)
            if at.is_view:
                lines.append(
                    f"{scale:>6}: drawn from the {' and '.join(at.sources)} sweeps (l shows it)"
                )
                continue
            specs = at.expand()
            lines.append(f"{scale:>6}: {len(specs)} runs, {self._cost(specs)}")
        if preset.name in self.swept:
            lines += ["", f"sweeps: {', '.join(self.swept[preset.name])} (w lists them)"]
        lines += ["", _reflow(preset.description)]
        self.query_one("#preset-info", Static).update("\n".join(lines))
        select = self.query_one("#scale", Select)
        select.set_options([(s, s) for s in preset.scale_names])
        select.value = "quick" if "quick" in preset.scale_names else preset.scale_names[0]

    def _cost(self, specs: list[RunSpec]) -> str:
        """The estimated wall time on the app's workers, as a dry run times them."""
        slots, address = self.slots, self.app.address
        cohorts, _ = sweeps.cohorts_on(specs, slots, address)
        kind = slots_kind(slots)
        seconds, _ = sweeps.estimate(cohorts, len(slots), kind, here=address is None)
        workers = f"{len(slots)} {'CPU' if kind == 'cpu' else 'GPU'} workers"
        if seconds is None:
            return f"on {workers}: no estimate yet (`grokterm bench --device cuda --check`)"
        return f"about {timedelta(seconds=int(seconds))} on {workers}"

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "launch":
            self.action_launch()

    def action_launch(self) -> None:
        preset = self.current
        if preset is not None:
            self.app.launch(preset, str(self.query_one("#scale", Select).value))


def _reflow(text: str) -> str:
    """A preset's description as paragraphs the panel wraps to its width: the file's
    line breaks are for an 88-column editor and left ragged lines in a narrower panel."""
    paragraphs = text.strip().split("\n\n")
    return "\n\n".join(" ".join(p.split()) for p in paragraphs)
