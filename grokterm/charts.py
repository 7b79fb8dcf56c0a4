"""What a paper figure shows, as data: panels of lines (with 95% bands) and, for fig 1,
the zone map. Computed once from stored runs; drawn in the terminal by
grokterm.figures (plotext) and for a paper by grokterm.paper (matplotlib). No torch.

Kinds (a preset's `[plot] kind`): curves (figs 2, 5, 9: accuracy and a series against
step, one colour per run), final (figs 3, 6, 7: mean final validation accuracy against
`x`, one line per `series`, with its 95% band), capacity (fig 4), emergence (figs 8,
10: best-seed validation accuracy against model size), zones (fig 1: D_crit and D_mem
against d and the zone map between them). A sweep still training is drawn from what is
there: unfinished runs at their latest evaluation, and the y label says so."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from grokterm import analysis, wording
from grokterm.records import MetricPoint, Run
from grokterm.series import SERIES

MAX_CURVES = 8  # more runs than this on one plot is unreadable in a terminal
ZONE_CHARS = {"progression": "P", "ungrokking": "U", "grokking": "G", "semi-grokking": "S"}
SO_FAR = " - unfinished runs at their latest step"


@dataclass
class Line:
    label: str | None  # in the legend; None: shares the legend entry of its colour
    xs: list[float]
    ys: list[float]
    colour: int = 0  # the same run or group keeps its colour (and marker) in every panel
    dotted: bool = False  # the second series of a colour (validation beside train)
    low: list[float] | None = None  # its 95% band, where it is a mean over seeds
    high: list[float] | None = None


@dataclass
class Panel:
    title: str
    xlabel: str
    ylabel: str = ""
    lines: list[Line] = field(default_factory=list)
    xlog: bool = False  # the values span decades: a log axis
    ylim: tuple[float, float] | None = None
    ticks: list[float] | None = None  # x ticks at the data's own values (None: decades)
    tick_labels: list[str] | None = None
    dotted: str = ""  # what its dotted lines are ("validation"), said by each renderer


@dataclass
class Zones:
    ds: list[int]
    ns: list[int]
    cells: dict[tuple[int, int], str]  # (n, d) -> zone letter (ZONE_CHARS), "?" unmeasured


@dataclass
class Chart:
    title: str  # the figure's (a preset's title), "" where none is given
    panels: list[Panel]
    zones: Zones | None = None


def chart(plot: dict, runs: Sequence[Run], curves: dict[int, list[MetricPoint]]) -> Chart:
    """The figure of one sweep's runs (curves: their points, for kind curves)."""
    kind = plot["kind"]
    if kind == "curves":
        return _curves(runs, curves, plot.get("metric", "norm"))
    if kind == "final":
        return _final(plot, runs)
    if kind == "capacity":
        return _capacity(runs)
    if kind == "emergence":
        return _emergence(plot, runs)
    raise ValueError(f"chart: kind {kind!r} needs two sweeps; use zones_chart")


def zones_chart(crit: dict[int, float | None], mem: dict[int, float], ns: Sequence[int]) -> Chart:
    """Fig 1: the measured D_crit(d) and D_mem(d), then the zone of every (d, n)."""
    panel = Panel("memorization capacity and critical dataset size", "hidden size d",
                  "training pairs")  # fmt: skip
    for i, (curve, label) in enumerate(
        ((crit, "D_crit: grokking needs at least"), (mem, "D_mem: capacity"))
    ):
        known = sorted((d, v) for d, v in curve.items() if v is not None)
        if known:
            panel.lines.append(Line(label, [d for d, _ in known], [v for _, v in known], i))
    ds = sorted(set(crit) | set(mem))
    _data_ticks(panel, ds)
    cells = {(n, d): ZONE_CHARS.get(analysis.zone(d, n, crit, mem), "?") for n in ns for d in ds}
    return Chart("", [panel], zones=Zones(ds, sorted(ns), cells))


def _curves(runs, curves, metric: str) -> Chart:
    """Accuracy on the left (train solid, validation dotted); on the right the
    parameter norm, or another series."""
    shown = [r for r in runs if curves.get(r.id)][:MAX_CURVES]
    panels = [
        Panel("accuracy", "step", ylim=(0, 1), xlog=True, dotted="validation"),
        Panel(SERIES[metric].axis, "step", xlog=True,
              ylim=(0, 1) if SERIES[metric].is_accuracy else None),
    ]  # fmt: skip
    keys = (("train_acc", "val_acc"), (metric,))
    for colour, run in enumerate(shown):
        rows = [m for m in curves[run.id] if m.step > 0]  # (no step 0 on a log axis)
        xs = [float(m.step) for m in rows]
        for panel, series in zip(panels, keys):
            for key in series:
                ys = [SERIES[key].shown(m.get(key)) for m in rows]
                label = run.key if key != "val_acc" and panel is panels[0] else None
                panel.lines.append(Line(label, xs, ys, colour, dotted=key == "val_acc"))
    return Chart("", panels)


def _so_far(runs) -> tuple[list[Run], str]:
    """The runs to draw (finished ones, and running or stopped ones that have been
    evaluated; not diverged ones) and the note the y label needs for the unfinished."""
    shown = [
        r for r in runs if r.status == "done" or (r.status not in ("diverged", "failed") and r.step)
    ]
    return shown, SO_FAR if any(r.status != "done" for r in shown) else ""


def _final(plot, runs) -> Chart:
    x, series = plot.get("x", "d"), plot.get("series")
    metric = plot.get("metric", "val_acc")
    shown, note = _so_far(runs)
    panel = Panel("", x, f"final {metric} (mean, 95% band){note}",
                  ylim=(0, 1) if SERIES[metric].is_accuracy else None)  # fmt: skip
    groups: dict = {}
    for p in analysis.aggregate(shown, analysis.final(metric)):
        groups.setdefault(p.grid.get(series) if series else None, []).append(p)
    for i, (value, members) in enumerate(sorted(groups.items(), key=lambda kv: str(kv[0]))):
        members.sort(key=lambda p: p.grid[x])
        panel.lines.append(_mean_line(f"{series}={value}" if series else "mean", members, x, i))
    _data_ticks(panel, [p.grid[x] for members in groups.values() for p in members])
    return Chart("", [panel])


def _capacity(runs) -> Chart:
    shown, note = _so_far(runs)
    points = sorted(analysis.d_mem(shown), key=lambda p: p.grid["d"])
    panel = Panel("", "hidden size d", f"training pairs predicted correctly{note}",
                  lines=[_mean_line("pairs memorized (mean, 95% band)", points, "d", 0)])  # fmt: skip
    _data_ticks(panel, [p.grid["d"] for p in points])
    return Chart("", [panel])


def _emergence(plot, runs) -> Chart:
    series = plot.get("series", "n_mem")
    shown, note = _so_far(runs)
    panel = Panel("", "parameters", f"best-seed validation accuracy{note}", ylim=(0, 1),
                  xlog=True)  # fmt: skip
    groups: dict = {}
    for p in analysis.aggregate([analysis.with_size(r) for r in shown]):
        groups.setdefault(p.grid.get(series), []).append(p)
    for i, (value, members) in enumerate(sorted(groups.items(), key=lambda kv: str(kv[0]))):
        members.sort(key=lambda p: p.grid["n_params"])
        xs = [float(p.grid["n_params"]) for p in members]
        panel.lines.append(Line(f"{series}={value}", xs, [p.best for p in members], i))
    # Tick the ladder's rungs: a quick ladder can lie inside one decade (213k, 820k).
    _data_ticks(panel, [x for line in panel.lines for x in line.xs])
    return Chart("", [panel])


def _mean_line(label: str, points, x: str, colour: int) -> Line:
    return Line(label, [float(p.grid[x]) for p in points], [p.mean for p in points], colour,
                low=[p.low for p in points], high=[p.high for p in points])  # fmt: skip


def _data_ticks(panel: Panel, values: Sequence[float], most: int = 9) -> None:
    """Ticks at the values the data was taken at (thinned to `most`, both ends kept)."""
    values = sorted(set(values))
    if len(values) > most:
        step = (len(values) - 1) / (most - 1)
        values = sorted({values[round(i * step)] for i in range(most)})
    panel.ticks = [float(v) for v in values]
    panel.tick_labels = [wording.tick(v) for v in values]


def keep(n: int, points: int) -> list[int]:
    """Indices that downsample n points to about `points`, keeping both ends."""
    if n <= points:
        return list(range(n))
    return sorted({round(i * (n - 1) / (points - 1)) for i in range(points)})
