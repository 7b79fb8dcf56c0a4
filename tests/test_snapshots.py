"""Snapshot tests: each screen of the app at 80x24 (the smallest terminal it must
be readable in), and the sweep screen's views at 80x24 and 120x40 in the dark and the
light theme, from fixed synthetic databases. Update with --snapshot-update after an
intended change, and look at the SVGs before committing them."""

import os
from pathlib import Path

import pytest
from synth import CREATED, make_sweep
from test_app import settle
from textual.widgets import DataTable

from grokterm.tui.app import GroktermApp
from grokterm.tui.screens.sweep import SweepScreen

ROOT = Path(__file__).resolve().parents[1]
SIZE = (80, 24)


@pytest.fixture
def app(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # preset paths show as presets/...
    db = tmp_path / "runs.db"
    make_sweep(db, [8, 16, 32, 64], [2600, 3000, 4000], 2, name="synth")
    os.utime(db)
    return GroktermApp(db, Path("presets"), device="cpu", workers=2)


async def _settle(pilot):
    """Wait until the reads the last key started have come back and been drawn;
    a fixed pause is not enough on a loaded CI machine. A DataTable sizes its columns
    to rows just added at its next idle (Textual's `_require_update_dimensions`); on a
    loaded machine that can come after the screenshot, drawing the rows cut to the
    headers' widths."""
    await settle(pilot, 2)
    await pilot.wait_for_scheduled_animations()
    for _ in range(200):
        tables = pilot.app.screen.query(DataTable)
        if not any(t._require_update_dimensions for t in tables):
            break
        await pilot.pause(0.05)


def test_presets_screen(app, snap_compare):
    assert snap_compare(app, terminal_size=SIZE, run_before=_settle)


def test_presets_screen_light_theme(app, snap_compare):
    async def light(pilot):
        pilot.app.theme = "textual-light"
        await _settle(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=light)


def test_sweeps_screen(app, snap_compare):
    assert snap_compare(app, terminal_size=SIZE, press=["escape"], run_before=_settle)


def test_sweep_phase_map(app, snap_compare):
    async def phase(pilot):
        await pilot.press("escape")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("3", "down", "right")
        await _settle(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=phase)


def test_sweep_curves_of_a_cell(app, snap_compare):
    async def curves(pilot):
        await pilot.press("escape")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("3", "down", "down", "right", "enter")
        await _settle(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=curves)


def test_help_screen(app, snap_compare):
    assert snap_compare(app, terminal_size=SIZE, press=["question_mark"], run_before=_settle)


def test_sweep_phase_map_coloured_by_the_circuit_step(tmp_path, monkeypatch, snap_compare):
    monkeypatch.chdir(ROOT)
    db = tmp_path / "runs.db"
    make_sweep(db, [8, 16, 32, 64], [2600, 3000, 4000], 2, name="synth", measures=True)
    os.utime(db)
    app = GroktermApp(db, Path("presets"), device="cpu", workers=2)

    async def phase(pilot):
        await pilot.press("escape")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("3", "c")
        await _settle(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=phase)


# The sweep screen's views: (a sweep still training or finished, the keys that lead there)
SCENES = {
    "running": (True, ["down"] * 4),  # onto a run in training: its curves beside, from 120
    "finished": (False, []),
    "run_detail": (False, ["down", "enter"]),
    # the two seeds of n_train=4000 d=32, which grok at different steps: a band
    "grouped_curves": (False, [*["down"] * 8, "space", "down", "space", "2", "b"]),
    "figure": (False, ["4"]),
}


@pytest.mark.parametrize("theme", ["dark", "light"])
@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
@pytest.mark.parametrize("scene", SCENES)
def test_sweep_views(scene, size, theme, tmp_path, monkeypatch, snap_compare):
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(SweepScreen, "clock", staticmethod(lambda: CREATED + 3))
    running, keys = SCENES[scene]
    db = tmp_path / "runs.db"
    make_sweep(db, [8, 32, 64], [2600, 4000], 2, name="synth", running=running)
    os.utime(db)
    app = GroktermApp(db, Path("presets"), device="cpu", workers=2)

    async def view(pilot):
        if theme == "light":
            pilot.app.theme = "textual-light"
        await pilot.press("escape")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot, 2)
        for key in keys:
            await pilot.press(key)
            await settle(pilot)
        pilot.app.clear_notifications()  # a key's toast would hide what is under it
        await _settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=view)
