"""What a researcher reads in the app: a run in detail (enter), runs overlaid (space),
the figure tab live and written for a paper (e), progress as work with an ETA; and
the one-run preset the detail offers trains exactly that run."""

import os
from pathlib import Path

import pytest
from synth import make_sweep
from test_app import open_first_sweep, settle, shown_text, wait_until

from grokterm.presets import parse_preset, tomllib
from grokterm.progress import work_text
from grokterm.records import Progress, Worker
from grokterm.reproduce import alone
from grokterm.store import Store
from grokterm.tui.app import GroktermApp

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def app(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "runs.db"
    make_sweep(db, [8, 32, 64], [2600, 4000], 2, name="synth")
    os.utime(db)
    return GroktermApp(db, ROOT / "presets", device="cpu", workers=2)


async def test_enter_on_a_run_shows_it_in_detail_and_w_writes_its_own_preset(app, tmp_path):
    async with app.run_test(size=(100, 40)) as pilot:
        await open_first_sweep(pilot)
        await pilot.press("down", "enter")
        await settle(pilot, 2)
        screen = pilot.app.screen
        assert type(screen).__name__ == "RunScreen"
        run = Store.reader(tmp_path / "runs.db").runs(1)[1]
        status = shown_text(screen.query_one("#run-status"))
        assert f"{run.key}: done, step 2000 of 2000" in status
        label = " ".join(shown_text(screen.query_one("#run-label")).split())  # (as wrapped)
        assert f"label: {run.info.shown}" in label
        assert f"generalized (>= 0.95) at {run.info.gen_step or 'never'}" in label
        assert "parameter norm" in label and "bumps in train accuracy" in label
        config = shown_text(screen.query_one("#run-config"))
        assert "weight_decay" in config and "n_train" in config
        await wait_until(pilot, lambda: len(screen.query_one("#run-curves").series[run.id]) == 21)
        curves = screen.query_one("#run-curves")
        await wait_until(pilot, lambda: curves.chart is not None)  # drawn, with room for axes
        assert curves.content_size.height >= 12 and "step" in shown_text(curves)
        name = f"synth-run{run.id}.toml"
        assert f"grokterm run {name} --db alone.db" in shown_text(screen.query_one("#run-alone"))
        await pilot.press("w")
        written = (tmp_path / name).read_text()
        await pilot.press("escape")
        assert type(pilot.app.screen).__name__ == "SweepScreen"
    preset = parse_preset(tomllib.loads(written), name, written)
    (spec,) = preset.expand()
    assert spec.key == run.key and spec.config == run.config  # exactly this run, alone


def test_a_runs_own_preset_keeps_its_key_and_config_for_every_run(tmp_path):
    make_sweep(tmp_path / "runs.db", [8, 64], [2600, 4000], [0, 3])
    store = Store.reader(tmp_path / "runs.db")
    for run in store.runs(1):
        name, text = alone(store.sweep(1), run)
        (spec,) = parse_preset(tomllib.loads(text), name, text).expand()
        assert (spec.key, spec.config, spec.grid) == (run.key, run.config, run.grid)


async def test_the_figure_tab_is_written_for_a_paper_with_e(app, tmp_path):
    pytest.importorskip("matplotlib")
    async with app.run_test(size=(100, 40)) as pilot:
        screen = await open_first_sweep(pilot)
        await pilot.press("4")
        view = screen.query_one("#figure-scroll")
        await wait_until(pilot, lambda: view.shown is not None)
        await pilot.press("e")
        await wait_until(pilot, lambda: (tmp_path / "synth-sweep1.claims.md").exists())
        assert (tmp_path / "synth-sweep1.png").read_bytes().startswith(b"\x89PNG")
        assert not (tmp_path / "synth-sweep1.csv").exists()  # e in this tab: the figure
        assert "n_train=2600" in shown_text(view.query_one("#figure-view"))


def test_progress_reads_work_done_with_the_workers_rate_and_an_eta():
    p = Progress(runs=4, finished=0, diverged=0, failed=0, cohorts=2, cohorts_finished=0,
                 steps_done=0, steps=0, run_steps_done=1000, run_steps=4000)  # fmt: skip
    workers = [Worker(id=i, pid=1, host="h", device="cpu", sweep_id=1, status="running",
                      started=0.0, heartbeat=0.0, cohort_id=i, step=500, cohort_steps=2000,
                      cohort_runs=2, steps_per_sec=50.0) for i in (1, 2)]  # fmt: skip
    assert work_text(p, workers) == "1,000/4,000 run-steps (25%), 200 run-steps/s, ETA 0:00:15"
    assert work_text(p, []) == "1,000/4,000 run-steps (25%)"
