"""The app's keys keep one meaning (Pilot): escape goes back one level or clears the
field it is in, enter in the filter keeps it, sorting is reversible and marked in the
header, quit asks whenever a worker of this database runs on this host (whoever
started it), and the sweeps list says each sweep's status."""

import os
import signal
import subprocess
import sys
from contextlib import closing
from pathlib import Path

from conftest import FAST_ENV
from synth import make_sweep
from test_app import settle, slow_presets, wait_until
from textual.widgets import DataTable, Input

from grokterm import sweeps
from grokterm.records import Sweep, SweepCounts
from grokterm.store import Store
from grokterm.tui.app import GroktermApp
from grokterm.tui.screens.dialogs import QuitScreen
from grokterm.tui.screens.sweep import SweepScreen
from grokterm.tui.screens.sweeps import SweepsScreen

ROOT = Path(__file__).resolve().parents[1]


async def _sweep_screen(pilot) -> SweepScreen:
    await pilot.press("w")
    await settle(pilot)
    await pilot.press("enter")
    await settle(pilot, 2)
    assert isinstance(pilot.app.screen, SweepScreen)
    return pilot.app.screen


async def test_escape_goes_back_one_level_and_clears_the_filter(tmp_path):
    make_sweep(tmp_path / "runs.db", [8, 32], [2600, 3000], 1, steps=1000)
    app = GroktermApp(tmp_path / "runs.db", ROOT / "presets", workers=1)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _sweep_screen(pilot)
        table = screen.query_one("#run-table", DataTable)
        await pilot.press("slash", *"d=8 ", "enter")  # enter: keep the filter, go to its runs
        await settle(pilot)
        assert table.has_focus and table.row_count == 2
        await pilot.press("slash", "escape")  # escape in the field: clear it, stay here
        await settle(pilot)
        assert app.screen is screen and screen.query_one("#filter", Input).value == ""
        assert table.has_focus and table.row_count == 4
        await pilot.press("escape")  # escape elsewhere: back to the list
        await settle(pilot)
        assert isinstance(app.screen, SweepsScreen)
        await pilot.press("escape")  # the top level: nothing to go back to, nothing blank
        await settle(pilot)
        assert isinstance(app.screen, SweepsScreen) and app.screen.query_one(DataTable).row_count


async def test_sorting_steps_through_columns_reverses_and_marks_the_header(tmp_path):
    make_sweep(tmp_path / "runs.db", [8, 32, 64], [2600, 3000], 1, steps=1000)
    app = GroktermApp(tmp_path / "runs.db", ROOT / "presets", workers=1)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _sweep_screen(pilot)
        table = screen.query_one("#run-table", DataTable)

        def column(name: str) -> list[str]:
            return [str(table.get_cell_at((i, list(table.columns).index(name))))
                    for i in range(table.row_count)]  # fmt: skip

        assert str(table.columns["key"].label) == "key ^"
        for _ in range(4):  # key -> status -> step -> train -> val
            await pilot.press("s")
        await settle(pilot)
        assert (
            str(table.columns["val"].label) == "val ^" and str(table.columns["key"].label) == "key"
        )
        up = [float(v) for v in column("val")]
        assert up == sorted(up)
        await pilot.press("S")
        await settle(pilot)
        assert str(table.columns["val"].label) == "val v"
        assert [float(v) for v in column("val")] == sorted(up, reverse=True)


def test_a_sweeps_status_says_finished_running_interrupted_or_queued():
    sweep = Sweep(1, "s", "t", "2", "quick", None, "x", "", "")
    assert SweepCounts(sweep, 4, 4, 0, 0, 0, 1000).status == "finished"
    assert SweepCounts(sweep, 4, 1, 0, 2, 0, 900).status == "running"
    assert SweepCounts(sweep, 4, 0, 0, 0, 0, 2550).status == "interrupted"  # stopped partway
    assert SweepCounts(sweep, 4, 0, 0, 0, 0, 0).status == "queued"


async def test_the_sweeps_list_has_a_status_column(tmp_path):
    make_sweep(tmp_path / "runs.db", [8], [2600], 1, steps=1000)
    app = GroktermApp(tmp_path / "runs.db", ROOT / "presets", workers=1)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("w")
        await settle(pilot)
        table = app.screen.query_one(DataTable)
        assert str(table.get_cell_at((0, list(table.columns).index("status")))) == "finished"


async def test_quit_asks_about_workers_another_process_started(tmp_path):
    presets = slow_presets(tmp_path)
    db = tmp_path / "runs.db"
    run = subprocess.Popen([sys.executable, "-m", "grokterm.cli", "run", str(presets / "slow.toml"),
                            "--workers", "1", "--db", str(db)], cwd=tmp_path,
                           env=os.environ | FAST_ENV, stdout=subprocess.DEVNULL)  # fmt: skip
    try:
        app = GroktermApp(db, presets, device="cpu", workers=1)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_until(pilot, lambda: db.exists() and any(
                w.cohort_id for w in Store.reader(db).workers(1)))  # fmt: skip
            for key in ("q", "ctrl+q"):
                await pilot.press(key)
                await settle(pilot)
                assert isinstance(app.screen, QuitScreen), key  # asked, though not its workers
                await pilot.press("escape")
                await settle(pilot)
            await pilot.press("q")
            await settle(pilot)
            await pilot.click("#stop")
            await settle(pilot)
        assert run.wait(60) == 130  # its workers were stopped; `grokterm run` says so
    finally:  # nothing left training, whatever failed
        if run.poll() is None:
            run.send_signal(signal.SIGKILL)
        if db.exists():
            with closing(Store(db)) as store:
                sweeps.stop(store, 1)


async def test_presets_list_titles_marks_swept_ones_and_scrolls_from_the_keyboard(tmp_path):
    make_sweep(tmp_path / "runs.db", [8], [2600], 1, steps=1000, name="demo")
    app = GroktermApp(tmp_path / "runs.db", ROOT / "presets", workers=1)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        from textual.widgets import OptionList

        prompts = [str(o.prompt) for o in app.screen.query_one(OptionList).options]
        assert any(p.startswith("*demo") and "Grokking on a laptop CPU" in p for p in prompts)
        assert any(p.startswith(" fig2 ") for p in prompts)  # no sweep of it here
        app.screen.query_one(OptionList).highlighted = next(
            i for i, p in enumerate(prompts) if p.startswith("*demo"))  # fmt: skip
        await settle(pilot)
        assert "sweeps: #1 paper (finished)" in str(app.screen.query_one("#preset-info").content)
        scroll = app.screen.query_one("#preset-scroll")
        scroll.focus()
        await pilot.press("down", "down", "down")
        await settle(pilot)
        assert scroll.scroll_y > 0  # the description reads on past the panel


async def test_the_sweeps_bar_reads_the_fraction_of_run_steps_done(tmp_path):
    # Two cohorts of two runs: one trained to step 1000 of 1000, not yet finished; one queued.
    make_sweep(tmp_path / "runs.db", [8, 32], [2600], 2, steps=1000, finish=False)
    app = GroktermApp(tmp_path / "runs.db", ROOT / "presets", workers=1)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _sweep_screen(pilot)
        from textual.widgets import ProgressBar

        bar = screen.query_one(ProgressBar)
        assert (bar.progress, bar.total) == (2000, 4000)  # half the work, though no run finished
