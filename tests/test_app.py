"""The Textual app driven with Pilot: launch a preset, watch the run table and the
phase map fill in, open a run's curves, export; and the app never imports torch."""

import shutil
import subprocess
import sys
import time
from pathlib import Path

from synth import make_sweep

from grokterm.store import Store
from grokterm.tui.app import GroktermApp
from grokterm.tui.data import read_sweep
from grokterm.tui.screens.sweep import SweepScreen

ROOT = Path(__file__).resolve().parents[1]


async def wait_until(pilot, predicate, timeout=240.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await pilot.pause(0.5)
    raise AssertionError("timed out")


async def test_launch_demo_watch_it_fill_in_open_curves_and_export(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    presets = tmp_path / "presets"
    presets.mkdir()
    shutil.copy(ROOT / "presets" / "demo.toml", presets)
    updates = []

    def hook(message):
        if isinstance(message, SweepScreen.Updated):
            updates.append(message)

    app = GroktermApp(tmp_path / "runs.db", presets, device="cpu", workers=1)
    async with app.run_test(size=(100, 32), message_hook=hook) as pilot:
        await pilot.pause(0.3)
        assert type(app.screen).__name__ == "PresetsScreen"
        info = str(app.screen.query_one("#preset-info").render())
        assert "Grokking on a laptop CPU" in info and "quick: 1 runs" in info
        await pilot.press("l")  # launch at the default scale shown: quick
        await pilot.pause(0.5)
        screen = app.screen
        assert isinstance(screen, SweepScreen)
        table = screen.query_one("#run-table")
        await wait_until(pilot, lambda: table.row_count == 1)
        await wait_until(pilot, lambda: screen.state and screen.state.progress["finished"] == 1)
        await pilot.pause(1.5)  # one more poll after the finish
        row = table.get_row_at(0)
        assert row[0] == "n_train=1750 seed=0" and row[1] == "done" and row[2] == "1500"
        assert row[6] == "grokking"
        assert len(updates) >= 3  # polled repeatedly while it trained
        await pilot.press("3")
        await pilot.pause(0.3)
        phase = screen.query_one("#phase-map")
        assert " G " in phase.render().plain  # the cell took its label
        await pilot.press("enter")  # the cell's curves
        await pilot.pause(2.5)
        curves = screen.query_one("#curve-plots")
        assert [len(rows) for rows in curves.series.values()] == [31]  # steps 0..1500 every 50
        await pilot.press("e")
        await pilot.pause(0.3)
        exported = (tmp_path / "demo-sweep1.csv").read_text().splitlines()
        assert len(exported) == 2 and "grokking" in exported[1]
        await pilot.press("q")  # workers finished: quits without asking
    assert Store(tmp_path / "runs.db").sweep_finished(1)


async def test_open_sweep_select_a_run_sort_and_filter(tmp_path):
    make_sweep(tmp_path / "runs.db", [8, 32, 64], [2600, 4000], 2)
    app = GroktermApp(tmp_path / "runs.db", ROOT / "presets", workers=2)
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.press("escape")  # presets -> sweeps
        await pilot.pause(0.5)
        await pilot.press("enter")
        await pilot.pause(1.5)
        screen = app.screen
        table = screen.query_one("#run-table")
        assert table.row_count == 12
        assert table.has_focus  # opened with the table focused: arrows pick a run
        await pilot.press("down", "enter")  # the second run's curves
        await pilot.pause(1.5)
        assert screen.query_one("TabbedContent").active == "curves"
        assert len(screen.selected) == 1
        await pilot.press("1", "slash")
        await pilot.press(*"d=64")
        await pilot.pause(0.3)
        assert table.row_count == 4
        assert all("d=64" in table.get_row_at(i)[0] for i in range(4))


async def test_curves_never_double_when_reads_overlap_a_new_selection(tmp_path):
    make_sweep(tmp_path / "runs.db", [8, 32], [2600], 2, steps=1000)  # 11 rows per run
    app = GroktermApp(tmp_path / "runs.db", ROOT / "presets", workers=2)
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.press("escape", "enter")
        await pilot.pause(1.0)
        screen = app.screen
        ids = [r["id"] for r in screen.state.runs][:2]
        stale = read_sweep(app.store, 1, [], 0)  # a poll that started before the selection
        screen.show_curves(ids, "two runs")
        await pilot.pause(1.0)
        screen.post_message(SweepScreen.Updated(stale, 0.0))  # ...and lands after it
        await pilot.pause(2.0)  # several polls after it
        series = screen.query_one("#curve-plots").series
        assert [[r["step"] for r in rows] for rows in series.values()] == [
            list(range(0, 1001, 100))
        ] * 2


async def test_moving_onto_a_phase_map_cell_shows_its_runs_curves(tmp_path):
    make_sweep(tmp_path / "runs.db", [8, 32], [2600, 4000], 3, steps=1000)
    app = GroktermApp(tmp_path / "runs.db", ROOT / "presets", workers=2)
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.press("escape", "enter")
        await pilot.pause(1.0)
        screen = app.screen
        await pilot.press("3", "down", "right")  # d=32, n_train=4000
        await pilot.pause(1.5)
        assert screen.query_one("TabbedContent").active == "phase"  # no tab switch
        preview = screen.query_one("#cell-curves")
        assert sorted(preview.names.values()) == [f"n_train=4000 d=32 seed={s}" for s in range(3)]
        assert all(len(rows) == 11 for rows in preview.series.values())


async def test_quit_with_running_workers_asks_and_can_stop_them(tmp_path):
    presets = tmp_path / "presets"
    presets.mkdir()
    (presets / "slow.toml").write_text(
        'name = "slow"\ntitle = "slow"\n[run]\np = 23\nd = 16\nn_train = 200\nsteps = 200000\n'
    )
    app = GroktermApp(tmp_path / "runs.db", presets, device="cpu", workers=1)
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.press("l")
        await pilot.pause(1.0)
        pool = app.pools[1]
        store = Store(tmp_path / "runs.db")
        await wait_until(pilot, lambda: any(w["cohort_id"] for w in store.workers(1)), 60)
        await pilot.press("q")
        await pilot.pause(0.3)
        assert type(app.screen).__name__ == "QuitScreen"
        await pilot.click("#stop")
        await pilot.pause(0.5)
    deadline = time.monotonic() + 60
    while pool.alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not pool.alive()
    assert store.workers(1)[0]["status"] == "stopped"  # checkpointed and handed back


def test_app_starts_without_torch_and_fast():
    code = ("import sys, time; t = time.perf_counter(); import grokterm.tui.app;"
            "print('torch' in sys.modules, time.perf_counter() - t)")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded, seconds = out.stdout.split()
    assert loaded == "False"
    assert float(seconds) < 2.0  # measured ~0.8 s on the 2-core CI machine


def test_a_preset_description_is_reflowed_to_the_panel():
    from grokterm.tui.screens.presets import _reflow

    text = "Modular addition with a smaller modulus\n(p = 59) so that\n\na 2-core CPU shows it.\n"
    assert (
        _reflow(text)
        == "Modular addition with a smaller modulus (p = 59) so that\n\na 2-core CPU shows it."
    )


async def test_figure_tab_opens_from_any_tab_and_draws_the_figure(tmp_path):
    make_sweep(tmp_path / "runs.db", [8, 32], [2600], 1)
    app = GroktermApp(tmp_path / "runs.db", ROOT / "presets", workers=2)
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.press("escape", "enter")
        await pilot.pause(1.0)
        tabs = app.screen.query_one("TabbedContent")
        for start in ("1", "3"):  # from the run table, then from the phase map
            await pilot.press(start, "4")
            await pilot.pause(1.5)
            assert tabs.active == "figure"  # a focused table no longer pulls its tab back
        assert "final&#160;val_acc" in app.export_screenshot()  # the figure's axis label
