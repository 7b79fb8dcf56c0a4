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

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from grokterm import analysis, wording
from grokterm.analysis import mean_ci
from grokterm.labels import COLLAPSE, collapsed
from grokterm.records import MetricPoint, Run
from grokterm.series import SERIES

MAX_CURVES = 8  # more runs than this on one plot is unreadable in a terminal
ALL_BUT_SEED = "all but seed"  # a group: the runs alike but for their seed
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
    marks: list[tuple[float, int]] = field(default_factory=list)  # vertical lines: (x, colour)


@dataclass
class Zones:
    ds: list[int]
    ns: list[int]
    cells: dict[tuple[int, int], str]  # (n, d) -> zone letter (ZONE_CHARS), "?" unmeasured


@dataclass
class CurveView:
    """How runs' curves are drawn (the app's choices; a figure of kind curves uses the
    defaults): grouped or one by one, smoothed or raw, against log10 or plain step."""

    group: str | None = None  # None: each run; ALL_BUT_SEED; or a grid key
    smooth: float = 0.0  # the EMA factor; 0 draws the values as logged
    metric: str = "norm"  # the right-hand panel's series
    log_step: bool = True  # training dynamics span decades of steps


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


def curves_chart(
    runs: Sequence[Run], curves: dict[int, list[MetricPoint]], view: CurveView | None = None
) -> Chart:
    """Accuracy on the left (train solid, validation dotted) and view.metric on the right,
    against step: a line per run, or the mean of each group of runs with its 95% band.
    Only runs with points are drawn; a run or group keeps its colour (its place among
    `runs`, the sweep's runs in order) whichever others are drawn beside it."""
    view = view or CurveView()
    metric = view.metric
    smooth = f", EMA {view.smooth:g}" if view.smooth else ""
    panels = [
        Panel(f"accuracy{smooth}", "step", ylim=(0, 1), xlog=view.log_step, dotted="validation"),
        Panel(SERIES[metric].axis + smooth, "step", xlog=view.log_step,
              ylim=(0, 1) if SERIES[metric].is_accuracy else None),
    ]  # fmt: skip
    keys = (("train_acc", "val_acc"), (metric,))
    for colour, (name, members) in enumerate(groups(runs, view.group)):
        drawn = [curves[r.id] for r in members if curves.get(r.id)]
        if not drawn:
            continue
        label = name if len(members) == 1 else f"{name} ({len(drawn)} runs)"
        for panel, series in zip(panels, keys):
            for key in series:
                line = _mean_curve(drawn, key, view.smooth, view.log_step)
                line.label = label if key != "val_acc" and panel is panels[0] else None
                line.colour, line.dotted = colour, key == "val_acc"
                panel.lines.append(line)
        if len(members) == 1 and (at := collapsed(drawn[0])):  # a group has no one step
            panels[0].marks.append((float(at), colour))
    if panels[0].marks:
        panels[0].title += f", | softmax collapse >= {COLLAPSE:g}"
    return Chart("", panels)


def groups(runs: Sequence[Run], by: str | None) -> list[tuple[str, list[Run]]]:
    """The runs as groups, in the order of their first run: each run alone (None), runs
    alike but for the seed (ALL_BUT_SEED), or runs sharing a grid key's value."""
    if by is None:
        return [(r.key, [r]) for r in runs]
    found: dict[str, list[Run]] = {}
    for r in runs:
        if by == ALL_BUT_SEED:
            name = " ".join(f"{k}={v}" for k, v in r.grid.items() if k != "seed") or "all runs"
        else:
            name = f"{by}={r.grid.get(by)}"
        found.setdefault(name, []).append(r)
    return list(found.items())


def group_keys(runs: Sequence[Run]) -> list[str | None]:
    """What runs can be grouped by: nothing, all but the seed, then each grid key that
    takes more than one value."""
    keys = [
        k for k in (runs[0].grid if runs else {}) if len({str(r.grid.get(k)) for r in runs}) > 1
    ]
    return [None, ALL_BUT_SEED, *(k for k in keys if k != "seed")]


def _mean_curve(members: list[list[MetricPoint]], key: str, smooth: float, log_step: bool) -> Line:
    """The members' mean of a series at each step all of them were evaluated at (a sweep
    still training: up to the one furthest behind), with its 95% band where there are two
    or more; each member smoothed first, the mean and band taken as drawn (of log10 on a
    log series: a geometric mean)."""
    shown = SERIES[key].shown
    at: dict[int, list[float]] = {}
    for rows in members:
        values = ema([m.get(key) for m in rows], smooth)  # (then step 0 off a log axis)
        for m, value in zip(rows, values):
            if (m.step > 0 or not log_step) and math.isfinite(y := shown(value)):
                at.setdefault(m.step, []).append(y)
    steps = sorted(s for s, ys in at.items() if len(ys) == len(members))
    stats = [mean_ci(at[s]) for s in steps]
    line = Line(None, [float(s) for s in steps], [m for m, _, _ in stats])
    if len(members) > 1:
        line.low, line.high = [lo for _, lo, _ in stats], [hi for *_, hi in stats]
    return line


def ema(values: Sequence[float | None], factor: float) -> list[float | None]:
    """Exponential moving average, debiased as TensorBoard's smoothing is (the first
    value is not pulled towards 0); gaps stay gaps. factor 0: the values as they are."""
    if not factor:
        return list(values)
    out, last, weight = [], 0.0, 0.0
    for v in values:
        if v is None or not math.isfinite(v):
            out.append(None)
            continue
        last, weight = factor * last + (1 - factor) * v, factor * weight + (1 - factor)
        out.append(last / weight)
    return out


def _curves(runs, curves, metric: str) -> Chart:
    """The figure of kind curves: every run, or where that is too many to read, the mean
    and band of runs alike but for the seed (evenly thinned to MAX_CURVES, said so)."""
    shown = [r for r in runs if curves.get(r.id)]
    by = None if len(shown) <= MAX_CURVES else ALL_BUT_SEED
    found = groups(shown, by)
    if len(found) > MAX_CURVES:
        picked = keep(len(found), MAX_CURVES)
        shown = [r for i in picked for r in found[i][1]]
    drawn = curves_chart(shown, curves, CurveView(group=by, metric=metric))
    if len(found) > MAX_CURVES:
        drawn.panels[0].title += f" ({len(picked)} of {len(found)} groups, evenly picked)"
    return drawn


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
