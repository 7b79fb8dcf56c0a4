"""Live curves of the chosen runs, drawn as the terminal figure is (grokterm.figures):
accuracy (train by a run's letter, validation by its upper case) beside a series from
the registry, against step, the legend under the plots. Drawn at the widget's size, so
its axes always show. Each run, or each group of runs (its mean with a 95% band), keeps
its colour and letter whichever others are drawn beside it (charts.curves_chart). A
vertical line in a run's colour marks where it went into softmax collapse."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from rich.text import Text
from textual.widgets import Static

from grokterm.charts import Chart, CurveView, curves_chart
from grokterm.figures import render
from grokterm.records import MetricPoint, Run

WAITING = "no points yet: the curves come with the first evaluation"


class Curves(Static, can_focus=True):
    def __init__(self, **kwargs):
        super().__init__(WAITING, **kwargs)
        self.view = CurveView()
        self.runs: list[Run] = []  # the sweep's runs, which give colours and groups
        self.series: dict[int, list[MetricPoint]] = {}  # chosen run id -> its points so far
        self.chart: Chart | None = None  # what was last drawn

    def show_runs(self, runs: Sequence[Run], chosen: Iterable[int]) -> None:
        """Draw the chosen runs (ids) of `runs`; their points come through add_points."""
        self.runs = list(runs)
        chosen = set(chosen)
        self.series = {r.id: [] for r in self.runs if r.id in chosen}
        self.redraw()

    def add_points(self, points_by_run: dict[int, list[MetricPoint]]) -> None:
        changed = False
        for run_id, points in points_by_run.items():
            if run_id in self.series:
                self.series[run_id].extend(points)
                changed = True
        if changed:
            self.redraw()

    def set_view(self, **changes) -> None:
        """Grouping, smoothing, series or step axis (charts.CurveView's fields)."""
        self.view = replace(self.view, **changes)
        self.redraw()

    def on_resize(self) -> None:  # (also sent when a hidden tab's curves are shown again)
        self.redraw()

    def redraw(self) -> None:
        if not self.is_on_screen:  # a hidden tab's curves: drawn when shown (on_resize)
            return
        width, height = self.content_size
        if not any(self.series.values()):
            self.chart = None
            self.update(WAITING if self.series else "")
            return
        if width < 30 or height < 8:  # not laid out yet, or no room for axes
            return
        self.chart = curves_chart(self.runs, self.series, self.view)
        self.update(Text.from_ansi(render(self.chart, (width, height))))
