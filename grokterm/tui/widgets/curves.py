"""Live curves of the selected runs: train and validation accuracy and the parameter
norm against step, optionally against log10 step (plotext cannot re-render a log
axis, so the x values are log10 and the ticks are labelled by hand). A vertical line
in a run's colour marks where it went into softmax collapse (labels.collapsed)."""

from __future__ import annotations

import math

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual_plotext import PlotextPlot

from grokterm.charts import keep
from grokterm.labels import COLLAPSE, collapsed
from grokterm.records import MetricPoint
from grokterm.series import SERIES

MAX_RUNS = 6


class Curves(Horizontal, can_focus=True):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.log_step = True
        self.metric = "norm"  # the series of the right-hand plot (grokterm.series)
        self.series: dict[int, list[MetricPoint]] = {}  # run id -> its points so far
        self.names: dict[int, str] = {}
        self.collapse_marks: dict[int, float] = {}  # run id -> x of its collapse line, as drawn

    def compose(self) -> ComposeResult:
        yield PlotextPlot(id="acc-plot")
        yield PlotextPlot(id="norm-plot")

    def show_runs(self, names: dict[int, str]) -> None:
        """Start drawing these runs (id -> name); their points come through add_points."""
        self.names = dict(list(names.items())[:MAX_RUNS])
        self.series = {i: [] for i in self.names}
        self.redraw()

    def add_points(self, points_by_run: dict[int, list[MetricPoint]]) -> None:
        changed = False
        for run_id, points in points_by_run.items():
            if run_id in self.series:
                self.series[run_id].extend(points)
                changed = True
        if changed:
            self.redraw()

    def set_metric(self, metric: str) -> None:
        self.metric = metric
        self.redraw()

    def set_log_step(self, log_step: bool) -> None:
        self.log_step = log_step
        self.redraw()

    def redraw(self) -> None:
        acc, norm = (
            self.query_one("#acc-plot", PlotextPlot),
            self.query_one("#norm-plot", PlotextPlot),
        )
        for widget, title in (
            (acc, "accuracy: train - / val ."),
            (norm, SERIES[self.metric].axis),
        ):
            plt = widget.plt
            plt.clear_data()
            plt.clear_figure()
            plt.title(title)
            plt.xlabel("log10 step" if self.log_step else "step")
        width = max(self.size.width // 2 - 10, 10)
        steps, self.collapse_marks = [], {}
        for i, (run_id, rows) in enumerate(self.series.items()):
            rows = [r for r in rows if r.step > 0 or not self.log_step]
            xs = [math.log10(r.step) if self.log_step else r.step for r in rows]
            steps += [r.step for r in rows]
            if not xs:  # plotext fails on a labelled series without points
                continue
            idx = keep(len(xs), width)
            x = [xs[k] for k in idx]
            name = self.names[run_id]
            acc.plt.plot(
                x,
                [SERIES["train_acc"].shown(rows[k].get("train_acc")) for k in idx],
                color=i + 1,
                label=name,
                marker="braille",
            )
            acc.plt.plot(
                x,
                [SERIES["val_acc"].shown(rows[k].get("val_acc")) for k in idx],
                color=i + 1,
                marker="dot",
            )
            norm.plt.plot(
                x,
                [SERIES[self.metric].shown(rows[k].get(self.metric)) for k in idx],
                color=i + 1,
                marker="braille",
            )
            if at := collapsed(rows):  # (never at step 0: no log10 of it)
                x_at = self.collapse_marks[run_id] = math.log10(at) if self.log_step else at
                acc.plt.vline(x_at, color=i + 1)
        if self.collapse_marks:
            acc.plt.title(f"accuracy: train - / val .  | softmax collapse >= {COLLAPSE:g}")
        acc.plt.ylim(0, 1)
        if SERIES[self.metric].is_accuracy:
            norm.plt.ylim(0, 1)
        if self.log_step and steps:
            lo, hi = math.floor(math.log10(min(steps))), math.ceil(math.log10(max(steps)))
            for widget in (acc, norm):
                widget.plt.xticks(list(range(lo, hi + 1)), [f"1e{k}" for k in range(lo, hi + 1)])
        acc.refresh()
        norm.refresh()
