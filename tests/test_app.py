"""The Textual app driven with Pilot: launch a preset, watch the run table and the
phase map fill in, open a run's curves, export; its keys, its screen stack, its
failures; and the app never imports torch."""

import io
import shutil
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from synth import make_sweep

from grokterm.store import Store
from grokterm.tui.app import GroktermApp
from grokterm.tui.data import read_sweep
from grokterm.tui.screens.sweep import SweepScreen

ROOT = Path(__file__).resolve().parents[1]


async def settle(pilot, rounds: int = 1) -> None:
    """Wait until the reads that the last keys started have come back and been drawn."""
    for _ in range(rounds):
        await pilot.pause(0.05)
        for _ in range(400):
            if not any(w.is_running for w in pilot.app.workers):
                break
            await pilot.pause(0.05)
        await pilot.pause(0.05)


async def wait_until(pilot, predicate, polls: int = 2000) -> None:
    """Wait for something the app's workers will make true (training runs meanwhile)."""
    for _ in range(polls):
        if predicate():
            return
        await pilot.pause(0.1)
    raise AssertionError("never came true")


def shown_text(static) -> str:
    """What a Static shows, as plain text."""
    console = Console(width=120, record=True, file=io.StringIO())
    console.print(static.content)
    return console.export_text()


async def open_first_sweep(pilot):
    await pilot.press("w")
    await settle(pilot)
    await pilot.press("enter")
    await settle(pilot, 2)
    return pilot.app.screen


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
        await settle(pilot)
        assert type(app.screen).__name__ == "PresetsScreen"
        info = str(app.screen.query_one("#preset-info").render())
        assert "Grokking on a laptop CPU" in info and "quick: 1 runs" in info
        await pilot.press("l")  # launch at the default scale shown: quick
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, SweepScreen)
        table = screen.query_one("#run-table")
        await wait_until(pilot, lambda: screen.state and screen.state.progress.finished == 1)
        seen = len(updates)
        await wait_until(pilot, lambda: len(updates) > seen)  # one more poll after the finish
        await settle(pilot)
        row = table.get_row_at(0)
        assert row[0] == "n_train=1750 seed=0" and row[1] == "done" and row[2] == "1500"
        assert row[6] == "grokking"
        assert len(updates) >= 3  # polled repeatedly while it trained
        await pilot.press("3")
        await settle(pilot)
        phase = screen.query_one("#phase-map")
        assert " G " in phase.render().plain  # the cell took its label
        await pilot.press("enter")  # the cell's curves
        curves = screen.query_one("#curve-plots")
        await wait_until(pilot, lambda: [len(p) for p in curves.series.values()] == [31])
        await pilot.press("e")
        await settle(pilot)
        exported = (tmp_path / "demo-sweep1.csv").read_text().splitlines()
        assert len(exported) == 2 and "grokking" in exported[1]
        await pilot.press("q")  # workers finished: quits without asking
    assert Store(tmp_path / "runs.db").sweep_finished(1)


async def test_open_sweep_select_a_run_sort_filter_and_log_step(tmp_path):
    make_sweep(tmp_path / "runs.db", [8, 32, 64], [2600, 4000], 2)
    app = GroktermApp(tmp_path / "runs.db", ROOT / "presets", workers=2)
    async with app.run_test(size=(100, 32)) as pilot:
        screen = await open_first_sweep(pilot)
        table = screen.query_one("#run-table")
        assert table.row_count == 12
        assert table.has_focus  # opened with the table focused: arrows pick a run
        await pilot.press("down", "space", "down", "space")  # two runs overlaid
        await settle(pilot)
        assert len(screen.selected) == 2
        await pilot.press("2")
        assert screen.query_one("TabbedContent").active == "curves"
        curves = screen.query_one("#curve-plots")
        assert curves.view.log_step
        await pilot.press("g")  # linear step, in every curve view
        assert not any(c.view.log_step for c in screen.query("Curves"))
        seen = []
        for _ in range(3):  # the series this sweep logs beside accuracy, then round again
            await pilot.press("m")
            seen.append(curves.view.metric)
        assert seen == ["train_loss", "val_loss", "norm"]  # no per-task series: single task
        await pilot.press("1")
        keys = [table.get_row_at(i)[0] for i in range(12)]
        await pilot.press("s", "s", "s", "s")  # status, step, train, then validation accuracy
        await settle(pilot)
        assert screen.sort_column == 4
        vals = [float(table.get_row_at(i)[4]) for i in range(12)]
        assert vals == sorted(vals) and keys != [table.get_row_at(i)[0] for i in range(12)]
        await pilot.press("slash")
        await pilot.press(*"d=64")
        await settle(pilot)
        assert table.row_count == 4
        assert all("d=64" in table.get_row_at(i)[0] for i in range(4))


async def test_curves_never_double_when_reads_overlap_a_new_selection(tmp_path):
    make_sweep(tmp_path / "runs.db", [8, 32], [2600], 2, steps=1000)  # 11 points per run
    app = GroktermApp(tmp_path / "runs.db", ROOT / "presets", workers=2)
    async with app.run_test(size=(100, 32)) as pilot:
        screen = await open_first_sweep(pilot)
        ids = [r.id for r in screen.state.runs][:2]
        with app.reader() as store:
            stale = read_sweep(store, 1, (), 0)  # a poll that started before the selection
        screen.show_curves(ids, "two runs")
        await settle(pilot)
        screen.post_message(SweepScreen.Updated(stale, 0.0))  # ...and lands after it
        await settle(pilot, 3)  # several polls after it
        series = screen.query_one("#curve-plots").series
        assert [[p.step for p in points] for points in series.values()] == [
            list(range(0, 1001, 100))
        ] * 2


async def test_moving_onto_a_phase_map_cell_shows_its_runs_curves(tmp_path):
    make_sweep(tmp_path / "runs.db", [8, 32], [2600, 4000], 3, steps=1000)
    app = GroktermApp(tmp_path / "runs.db", ROOT / "presets", workers=2)
    async with app.run_test(size=(100, 40)) as pilot:
        screen = await open_first_sweep(pilot)
        await pilot.press("3", "down", "right")  # d=32, n_train=4000
        await settle(pilot, 2)
        assert screen.query_one("TabbedContent").active == "phase"  # no tab switch
        preview = screen.query_one("#cell-curves")
        keys = sorted(r.key for r in preview.runs if r.id in preview.series)
        assert keys == [f"n_train=4000 d=32 seed={s}" for s in range(3)]
        assert all(len(points) == 11 for points in preview.series.values())


def slow_presets(tmp_path: Path) -> Path:
    presets = tmp_path / "presets"
    presets.mkdir()
    (presets / "slow.toml").write_text(
        'name = "slow"\ntitle = "slow"\n[run]\np = 23\nd = 16\nn_train = 200\nsteps = 200000\n'
    )
    return presets


async def test_quit_with_running_workers_asks_and_can_stop_them(tmp_path):
    app = GroktermApp(tmp_path / "runs.db", slow_presets(tmp_path), device="cpu", workers=1)
    store = Store.reader(tmp_path / "runs.db")
    async with app.run_test(size=(100, 32)) as pilot:
        await settle(pilot)
        await pilot.press("l")
        await wait_until(pilot, lambda: any(w.cohort_id for w in store.workers(1)))
        pool = app.pools[1]
        await pilot.press("q")
        await settle(pilot)
        assert type(app.screen).__name__ == "QuitScreen"
        await pilot.click("#stop")
        await settle(pilot)
    pool.wait(60)
    assert not pool.alive()
    assert store.workers(1)[0].status == "stopped"  # checkpointed and handed back


async def test_quit_leave_running_then_x_stops_and_r_resumes_them(tmp_path):
    """Workers outlive the app: "leave running" quits and they train on; a second app
    stops them from the sweeps list (x) and resumes the sweep (r)."""
    presets = slow_presets(tmp_path)
    app = GroktermApp(tmp_path / "runs.db", presets, device="cpu", workers=1)
    store = Store.reader(tmp_path / "runs.db")
    async with app.run_test(size=(100, 32)) as pilot:
        await settle(pilot)
        await pilot.press("l")
        await wait_until(pilot, lambda: any(w.cohort_id for w in store.workers(1)))
        await pilot.press("q")
        await settle(pilot)
        await pilot.click("#leave")
        await settle(pilot)
    left = app.pools[1]
    assert left.alive() == 1 and store.workers(1)[0].status == "running"

    again = GroktermApp(tmp_path / "runs.db", presets, device="cpu", workers=1)
    async with again.run_test(size=(100, 32)) as pilot:
        await pilot.press("w")
        await settle(pilot)
        await pilot.press("x")  # stop the workers another app started
        left.wait(60)
        assert not left.alive() and store.workers(1)[0].status == "stopped"
        step = store.cohorts(1)[0].step
        assert step > 0 and store.cohorts(1)[0].status == "queued"
        await pilot.press("r")  # resume: a new worker, from the checkpoint
        await settle(pilot)
        assert isinstance(again.screen, SweepScreen)
        await wait_until(pilot, lambda: store.cohorts(1)[0].step > step)
        assert len(store.workers(1)) == 2
        await pilot.press("q")
        await settle(pilot)
        await pilot.click("#stop")
        await settle(pilot)
    again.pools[1].wait(60)


async def test_the_screen_stack_stays_bounded_and_hidden_screens_do_not_poll(tmp_path):
    make_sweep(tmp_path / "runs.db", [8, 32], [2600], 1, steps=1000)
    app = GroktermApp(tmp_path / "runs.db", ROOT / "presets", workers=2)
    async with app.run_test(size=(100, 32)) as pilot:
        for _ in range(4):
            for key in ("p", "w", "p", "w", "enter"):
                await pilot.press(key)
                await settle(pilot)
            assert isinstance(app.screen, SweepScreen)
            await pilot.press("escape")
            await settle(pilot)
            assert type(app.screen).__name__ == "SweepsScreen"
        for key in ("enter", "escape", "escape", "enter", "p", "escape"):
            await pilot.press(key)
            await settle(pilot)
            assert app.screen_stack  # never an empty screen
        stacks = {mode: len(stack) for mode, stack in app._screen_stacks.items()}
        assert all(n <= 2 for n in stacks.values()), stacks
        # Presets shown: the sweeps list and a sweep left open in its mode are hidden.
        await pilot.press("w", "enter")
        await settle(pilot)
        sweep = app.screen
        await pilot.press("p")
        await settle(pilot)
        hidden = app._screen_stacks["sweeps"]  # the sweeps list, and the sweep on top of it
        assert len(hidden) == 2 and hidden[1] is sweep
        before = [s.reads for s in hidden]
        await pilot.pause(3.5)  # three polling intervals
        assert [s.reads for s in hidden] == before
        await pilot.press("w")
        await settle(pilot)
        assert app.screen is not sweep  # w shows the list, not the sweep left on top
        assert app.screen.reads > before[0]  # shown again: polling again


async def test_the_command_palette_opens_a_sweep(tmp_path):
    make_sweep(tmp_path / "runs.db", [8], [2600], 1, steps=1000, name="paletted")
    app = GroktermApp(tmp_path / "runs.db", ROOT / "presets", workers=2)
    async with app.run_test(size=(100, 32)) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+p")
        await settle(pilot)
        await pilot.press(*"open sweep 1")
        await settle(pilot, 2)
        await pilot.press("enter")
        await settle(pilot, 2)
        assert isinstance(app.screen, SweepScreen) and app.screen.sweep_id == 1
        assert "paletted" in str(app.screen.sub_title)


async def test_a_failing_read_is_a_notification_not_a_crash(tmp_path, monkeypatch):
    from grokterm.tui.screens import sweep as sweep_screen

    make_sweep(tmp_path / "runs.db", [8], [2600], 1, steps=1000)
    app = GroktermApp(tmp_path / "runs.db", ROOT / "presets", workers=2)

    def broken(*_):
        raise RuntimeError("disk on fire")

    async with app.run_test(size=(100, 32)) as pilot:
        monkeypatch.setattr(sweep_screen, "read_sweep", broken)
        screen = await open_first_sweep(pilot)
        assert any("disk on fire" in str(n.message) for n in app._notifications)
        assert app.is_running and isinstance(app.screen, SweepScreen)
        monkeypatch.undo()  # the disk recovers: the next poll draws the sweep
        await wait_until(pilot, lambda: screen.state is not None)


async def test_a_failed_cohort_shows_its_error_in_the_worker_lines_and_the_run_table(tmp_path):
    make_sweep(tmp_path / "runs.db", [8, 32], [2600], 1, steps=1000, finish=False)
    store = Store(tmp_path / "runs.db")
    worker = store.register_worker(1, "cpu", "/var/log/worker-7.log")
    job = store.claim_cohort(1, worker, "cpu", lease_s=60)
    store.fail_cohort(job.cohort_id, worker, "OutOfMemoryError: CUDA out of memory", 1)
    app = GroktermApp(tmp_path / "runs.db", ROOT / "presets", workers=2)
    async with app.run_test(size=(120, 32)) as pilot:
        screen = await open_first_sweep(pilot)
        header = str(screen.query_one("#workers").render())
        assert "1 failed" in header
        assert f"worker {worker} (running): OutOfMemoryError: CUDA out of memory" in header
        assert "log: /var/log/worker-7.log" in header
        rows = [screen.query_one("#run-table").get_row_at(i) for i in range(2)]
        failed = [r for r in rows if r[1] == "failed"]
        assert len(failed) == 1 and failed[0][6].startswith("OutOfMemoryError")


async def test_fig1_is_drawn_in_the_app_from_its_source_sweeps(tmp_path):
    """Fig 1 trains nothing: launching it opens its figure, drawn from the fig 3 and
    fig 4 sweeps (here synthetic ones of those names), as `grokterm show` draws it."""
    db = tmp_path / "runs.db"
    make_sweep(db, [32, 64], [2000, 3000, 4000], 1, name="fig3")
    make_sweep(db, [32, 64], [4000], 1, name="fig4")
    presets = tmp_path / "presets"
    presets.mkdir()
    shutil.copy(ROOT / "presets" / "fig1.toml", presets)
    app = GroktermApp(db, presets, workers=2)
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        assert "drawn from the fig3 and fig4 sweeps" in str(
            app.screen.query_one("#preset-info").render()
        )
        await pilot.press("l")
        await settle(pilot, 2)
        assert type(app.screen).__name__ == "FigureScreen"
        text = shown_text(app.screen.query_one("#figure-view"))
        assert "zones (P progression" in text and "D_crit: grokking needs at least" in text
        assert (
            "the paper's claims" in text and "critical dataset size" in text and "evidence" in text
        )


def test_app_starts_without_importing_torch_or_pandas():
    """What the app imports at start: not torch (training is in worker processes),
    nor numpy and pandas, and a bounded number of modules in all."""
    code = ("import sys; import grokterm.tui.app; mods = set(sys.modules);"
            "print('torch' in mods, 'pandas' in mods, 'numpy' in mods, len(mods))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    torch, pandas, numpy, count = out.stdout.split()
    assert (torch, pandas, numpy) == ("False", "False", "False")
    assert int(count) < 600, count  # 458 measured: textual, rich, plotext and grokterm


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
        await open_first_sweep(pilot)
        tabs = app.screen.query_one("TabbedContent")
        for start in ("1", "3"):  # from the run table, then from the phase map
            await pilot.press(start, "4")
            await settle(pilot, 2)
            assert tabs.active == "figure"  # a focused table no longer pulls its tab back
        assert "final&#160;val_acc" in app.export_screenshot()  # the figure's axis label
