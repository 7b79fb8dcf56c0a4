"""The app's views of the circuit, driven as a person would (Pilot): the phase map's
colourings and the curves' softmax-collapse mark."""

from pathlib import Path

from synth import make_sweep
from test_app import open_first_sweep, settle

from grokterm.tui.app import GroktermApp
from grokterm.tui.widgets.phase_map import colourings

ROOT = Path(__file__).resolve().parents[1]


async def test_the_phase_map_colours_by_the_circuit_step_and_by_a_series(tmp_path):
    """c cycles the map's colouring: the label, the step the circuit formed, the step of
    softmax collapse, then each logged series; a cell shows the seeds' mean."""
    make_sweep(tmp_path / "runs.db", [8, 64], [2600, 4000], 2, steps=1000, measures=True)
    app = GroktermApp(tmp_path / "runs.db", ROOT / "presets", workers=2)
    async with app.run_test(size=(100, 40)) as pilot:
        screen = await open_first_sweep(pilot)
        await pilot.press("3")
        await settle(pilot)
        phase = screen.query_one("#phase-map")
        assert phase.colour == "label" and "G " in phase.render().plain
        await pilot.press("c")
        await settle(pilot)
        assert phase.colour == "circuit_step"
        text = phase.render().plain
        assert "step the circuit formed (seeds' mean)" in text
        cells = {key: phase.cell_value(cell) for key, cell in phase.cells.items()}
        runs = {(r.grid["d"], r.grid["n_train"]): [] for r in phase.runs}
        for r in phase.runs:
            runs[(r.grid["d"], r.grid["n_train"])].append(r.info.circuit_step)
        for key, steps in runs.items():  # the mean over the seeds that formed it
            formed = [s for s in steps if s is not None]
            assert cells[key] == (sum(formed) / len(formed) if formed else None)
        assert cells[(8, 2600)] is None and " -- " in text  # d=8 never generalizes
        assert f"{cells[(64, 4000)]:.0f}" in text
        await pilot.press("c", "c")  # collapse step, then the first logged series
        await settle(pilot)
        assert phase.colour == "train_loss"
        for _ in range(10):
            if phase.colour == "restricted_loss":
                break
            await pilot.press("c")
        await settle(pilot)
        assert "final restricted loss (key frequencies only) (seeds' mean)" in (
            phase.render().plain
        )
        options = colourings(phase.runs)
        for _ in range(len(options) - options.index("restricted_loss")):
            await pilot.press("c")
        assert phase.colour == "label"  # round to the start


async def test_the_curves_mark_where_a_run_went_into_softmax_collapse(tmp_path):
    make_sweep(tmp_path / "runs.db", [64], [4000], 1, steps=1000, measures=True)
    app = GroktermApp(tmp_path / "runs.db", ROOT / "presets", workers=2)
    async with app.run_test(size=(100, 40)) as pilot:
        screen = await open_first_sweep(pilot)
        await pilot.press("space", "2")  # the run overlaid in the curves tab
        await settle(pilot, 2)
        curves = screen.query_one("#curve-plots")
        run = screen.state.runs[0]
        assert run.info.collapse_step == 100  # the synthetic share is train accuracy - 0.3
        marks = curves.chart.panels[0].marks
        assert marks == [(100.0, 0)] and curves.chart.panels[0].xlog  # drawn at log10 100
        assert "softmax collapse" in curves.chart.panels[0].title
        curves.set_view(log_step=False)
        assert curves.chart.panels[0].marks == marks and not curves.chart.panels[0].xlog
