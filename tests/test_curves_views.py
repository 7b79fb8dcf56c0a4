"""Curves a researcher can read, and layouts that use the terminal: groups drawn as their
mean with a 95% band, EMA smoothing, colours that stay with a run, plots that fit their
pane (axes shown), the run table beside its curves from 120 columns and shortened by
rule below, the phase map growing with its space, and each GPU's use where there is one."""

import os
from dataclasses import replace
from pathlib import Path

import pytest
from rich.style import Style
from synth import make_sweep
from test_app import open_first_sweep, settle, shown_text, wait_until

from grokterm import gpu_stats
from grokterm.analysis import mean_ci
from grokterm.charts import (
    ALL_BUT_SEED,
    MAX_CURVES,
    CurveView,
    chart,
    curves_chart,
    ema,
    group_keys,
)
from grokterm.records import MetricPoint, Run, RunConfig
from grokterm.tui.app import GroktermApp
from grokterm.tui.screens.sweep import SweepScreen

ROOT = Path(__file__).resolve().parents[1]


def _runs(grid: list[dict]) -> list[Run]:
    return [Run(i + 1, 1, 1, " ".join(f"{k}={v}" for k, v in g.items()), g, RunConfig(), "done")
            for i, g in enumerate(grid)]  # fmt: skip


def _points(run_id: int, vals: list[float]) -> list[MetricPoint]:
    return [MetricPoint(run_id, 100 * (k + 1), {"train_acc": 1.0, "val_acc": v, "norm": 30.0})
            for k, v in enumerate(vals)]  # fmt: skip


def test_a_group_is_drawn_as_its_seeds_mean_with_a_95_band():
    runs = _runs([{"d": 32, "seed": s} for s in range(3)] + [{"d": 64, "seed": 0}])
    vals = [[0.1, 0.5], [0.2, 0.7], [0.3, 0.9], [1.0, 1.0]]
    curves = {r.id: _points(r.id, v) for r, v in zip(runs, vals)}
    drawn = curves_chart(runs, curves, CurveView(group=ALL_BUT_SEED))
    train, val, other_train, other_val = drawn.panels[0].lines
    assert train.label == "d=32 (3 runs)" and val.label is None and val.dotted
    mean, low, high = mean_ci([0.5, 0.7, 0.9])
    assert val.xs == [100.0, 200.0] and val.ys[1] == pytest.approx(mean)
    assert (val.low[1], val.high[1]) == (pytest.approx(low), pytest.approx(high))
    assert other_train.label == "d=64" and other_val.low is None  # one run: no band
    assert other_train.colour == 1 != train.colour
    by_d = curves_chart(runs, curves, CurveView(group="d"))
    assert [line.label for line in by_d.panels[0].lines[::2]] == ["d=32 (3 runs)", "d=64"]


def test_a_run_keeps_its_colour_whichever_runs_are_drawn_beside_it():
    runs = _runs([{"d": d, "seed": 0} for d in (8, 16, 32)])
    alone = curves_chart(runs, {3: _points(3, [0.5])})
    beside = curves_chart(runs, {1: _points(1, [0.1]), 3: _points(3, [0.5])})
    assert [line.colour for line in alone.panels[0].lines] == [2, 2]
    assert [line.colour for line in beside.panels[0].lines] == [0, 0, 2, 2]


def test_smoothing_is_a_debiased_ema_that_keeps_gaps_and_says_its_factor():
    assert ema([1.0, 1.0, 1.0], 0.9) == pytest.approx([1.0, 1.0, 1.0])  # not pulled to 0
    assert ema([0.0, 1.0], 0.5) == pytest.approx([0.0, 1 / 1.5])
    assert ema([0.2, None, 0.4], 0.0) == [0.2, None, 0.4]
    assert ema([0.2, None, 0.4], 0.6)[1] is None
    runs = _runs([{"d": 8, "seed": 0}])
    drawn = curves_chart(runs, {1: _points(1, [0.0, 1.0])}, CurveView(smooth=0.6))
    assert "EMA 0.6" in drawn.panels[0].title and "EMA 0.6" in drawn.panels[1].title
    assert drawn.panels[0].lines[1].ys == pytest.approx([0.0, 0.4 / 0.64])


def test_runs_group_by_each_run_all_but_the_seed_or_a_key_that_varies():
    runs = _runs(
        [{"n_train": n, "d": d, "seed": s} for n in (2600,) for d in (8, 32) for s in (0, 1)]
    )
    assert group_keys(runs) == [None, ALL_BUT_SEED, "d"]  # n_train takes one value


def test_a_curves_figure_of_many_runs_draws_group_means_and_says_what_it_picked():
    grid = [{"d": d, "seed": s} for d in range(1, 11) for s in (0, 1)]
    runs = _runs(grid)
    curves = {r.id: _points(r.id, [0.1 * (r.id % 7)]) for r in runs}
    drawn = chart({"kind": "curves"}, runs, curves)
    labelled = [line.label for line in drawn.panels[0].lines if line.label]
    assert len(labelled) == MAX_CURVES and all(label.endswith("(2 runs)") for label in labelled)
    assert f"({MAX_CURVES} of 10 groups, evenly picked)" in drawn.panels[0].title
    few = chart({"kind": "curves"}, runs[:4], curves)
    assert [line.label for line in few.panels[0].lines if line.label] == [r.key for r in runs[:4]]


@pytest.fixture
def db(tmp_path):
    db = tmp_path / "runs.db"
    make_sweep(db, [8, 32, 64], [2600, 4000], 2, name="synth")
    os.utime(db)
    return db


def _lines(widget) -> list[str]:
    return shown_text(widget).rstrip("\n").split("\n")


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_curves_fit_their_pane_with_the_x_axis_and_legend_shown(db, size):
    app = GroktermApp(db, ROOT / "presets", workers=2)
    async with app.run_test(size=size) as pilot:
        screen = await open_first_sweep(pilot)
        await pilot.press("space", "down", "space", "2")
        await settle(pilot, 2)
        curves = screen.query_one("#curve-plots")
        await wait_until(pilot, lambda: curves.chart is not None)
        lines = _lines(curves)
        assert len(lines) <= curves.content_size.height  # nothing under the pane's edge
        text = "\n".join(lines)
        assert "1e3" in text and any(line.split() == ["step", "step"] for line in lines[-5:])
        keys = [r.key for r in screen.state.runs[:2]]
        assert f"a/A {keys[0]}" in text and f"b/B {keys[1]}" in text  # the legend, under it
        side = screen.query_one("#side-curves")
        assert side.display == (size[0] >= 120)  # beside the run table on a wide terminal


async def test_a_narrow_table_shortens_by_rule_and_a_wide_one_shows_curves_beside_it(db):
    for width, letters in ((80, False), (64, True)):  # these keys and labels fit in 80
        async with GroktermApp(db, ROOT / "presets", workers=2).run_test(size=(width, 24)) as pilot:
            screen = await open_first_sweep(pilot)
            table = screen.query_one("#run-table")
            widths = sum(c.get_render_width(table) for c in table.columns.values())
            assert widths <= table.size.width  # no column cut, no sideways scrolling
            labels = {table.get_row_at(i)[6] for i in range(table.row_count)}
            assert all(len(label) <= 2 for label in labels) == letters and labels
            legend = shown_text(screen.query_one("#table-legend"))
            assert ("G grokking" in legend and "+ still rising" in legend) == letters
            for line in legend.splitlines():
                assert len(line.rstrip()) <= table.size.width
    async with GroktermApp(db, ROOT / "presets", workers=2).run_test(size=(160, 40)) as pilot:
        screen = await open_first_sweep(pilot)
        await pilot.press("down")
        await settle(pilot, 2)
        table, side = screen.query_one("#run-table"), screen.query_one("#side-curves")
        assert side.display and side.region.x >= table.region.right  # side by side
        run = screen.state.runs[1]
        await wait_until(pilot, lambda: side.series.get(run.id))  # the cursor's run
        assert table.get_row_at(1)[6] == run.short_label  # room enough: labels written out


async def test_b_groups_the_curves_with_bands_and_z_smooths_them(db):
    app = GroktermApp(db, ROOT / "presets", workers=2)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_first_sweep(pilot)
        await pilot.press("space", "down", "space", "2", "b")  # two seeds of one grid point
        await settle(pilot, 2)
        curves = screen.query_one("#curve-plots")
        await wait_until(pilot, lambda: curves.chart and curves.chart.panels[0].lines[0].low)
        line = curves.chart.panels[0].lines[0]
        assert line.label.endswith("(2 runs)") and "95% band" in shown_text(curves)
        await pilot.press("z")
        assert "EMA 0.6" in curves.chart.panels[0].title and screen.smooth == 0.6
        await pilot.press("b", "b", "b")  # by n_train, by d, then each run alone again
        assert curves.view.group is None and len(curves.chart.panels[0].lines) == 4


async def test_the_phase_map_previews_at_once_grows_and_wraps_its_legend_whole(db):
    app = GroktermApp(db, ROOT / "presets", workers=2)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_first_sweep(pilot)
        await pilot.press("3")  # no cursor move: its cell's curves all the same
        await settle(pilot, 2)
        cell = screen.query_one("#cell-curves")
        await wait_until(pilot, lambda: cell.series and all(cell.series.values()))
        phase = screen.query_one("#phase-map")
        assert phase.cell_width() >= 9  # room for the seeds' mean validation accuracy
        text = phase.render().plain
        point = phase.cells[(8, 2600)]["point"]
        assert f"{point.mean:.2f}" in text.splitlines()[2]
        legend = text.splitlines()[2 + len(phase.row_values) :]
        width = phase.content_size.width
        assert all(len(line) <= width for line in legend)
        assert any("G grokking" in line for line in legend)  # an entry never split
        # A running cell under the cursor: reversed, it keeps an ink and a ground of its own
        # (with the terminal's default ink it read 1.3:1 in the light theme).
        cell = phase.cells[(8, 2600)]
        cell["point"], cell["runs"] = None, [replace(r, status="running") for r in cell["runs"]]
        style = Style.parse(str(phase._cell((8, 2600), True, 5).style))
        assert style.reverse and style.color is not None and style.bgcolor is not None


async def test_the_sweep_screen_shows_each_gpus_use_and_nothing_without_one(db, monkeypatch):
    monkeypatch.setattr(
        SweepScreen, "gpu_lines", staticmethod(gpu_stats.read_lines)
    )  # (conftest: off)
    monkeypatch.setattr(gpu_stats, "read", lambda: [])  # this machine, as a CPU-only one
    app = GroktermApp(db, ROOT / "presets", workers=2)
    async with app.run_test(size=(100, 32)) as pilot:
        screen = await open_first_sweep(pilot)
        assert "GPU" not in shown_text(screen.query_one("#workers"))  # this CPU machine
        stat = gpu_stats.GpuStat(0, "NVIDIA H200", 87, 12 * 1024**3, 140 * 1024**3)
        monkeypatch.setattr(gpu_stats, "read", lambda: [stat])
        line = "GPU 0 NVIDIA H200: 87% busy, 12.0/140.0 GiB"  # at the next poll
        await wait_until(pilot, lambda: line in shown_text(screen.query_one("#workers")))


def test_a_group_is_drawn_where_all_its_runs_were_evaluated_and_a_log_series_as_drawn():
    runs = _runs([{"d": 32, "seed": s} for s in range(2)])
    ahead = [
        MetricPoint(1, s, {"restricted_loss": v}) for s, v in ((0, 1.0), (100, 0.1), (200, 0.01))
    ]
    behind = [MetricPoint(2, s, {"restricted_loss": v}) for s, v in ((0, 1.0), (100, 0.001))]
    drawn = curves_chart(runs, {1: ahead, 2: behind}, CurveView(group=ALL_BUT_SEED,
                                                                  metric="restricted_loss"))  # fmt: skip
    (loss,) = drawn.panels[1].lines
    assert loss.xs == [100.0]  # not step 0 on a log axis, not 200 (one run got there)
    assert loss.ys == [pytest.approx(-2.0)]  # the mean of log10 0.1 and log10 0.001
    assert loss.low[0] < -2.0 < loss.high[0]  # a band in the plotted space, not below 0
    linear = CurveView(group=ALL_BUT_SEED, metric="restricted_loss", log_step=False)
    assert curves_chart(runs, {1: ahead, 2: behind}, linear).panels[1].lines[0].xs == [0.0, 100.0]


async def test_the_cursor_keeps_its_run_through_a_rebuild_and_the_overlay_comes_back(db):
    app = GroktermApp(db, ROOT / "presets", workers=2)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_first_sweep(pilot)
        table = screen.query_one("#run-table")
        await pilot.press("down", "down", "down")
        await settle(pilot)
        run_id = table.run_at_cursor()
        assert screen.selected == (run_id,)  # the cursor's run, beside the table
        await pilot.press("s", "s", "s", "s", "S")  # sorted by validation, reversed: rebuilt
        await settle(pilot)
        assert table.run_at_cursor() == run_id and screen.selected == (run_id,)
        await pilot.press("space", "3")  # overlaid; the phase map previews its own cell
        await settle(pilot)
        assert screen.selected != (run_id,)
        await pilot.press("1")
        await settle(pilot)
        assert screen.selected == (run_id,)  # the overlay, as chosen
        await pilot.press("b")  # grouped: the run's seeds join it, for the band
        await settle(pilot)
        run = next(r for r in screen.state.runs if r.id == run_id)
        seeds = [r.id for r in screen.state.runs
                 if {k: v for k, v in r.grid.items() if k != "seed"}
                 == {k: v for k, v in run.grid.items() if k != "seed"}]  # fmt: skip
        assert screen.selected == tuple(seeds) and len(seeds) == 2
