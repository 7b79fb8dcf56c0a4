"""A paper figure drawn in the terminal from stored runs, with plotext. No torch.

Kinds (a preset's `[plot] kind`): curves (figs 2, 5, 9: accuracy and norm against
log10 step), final (figs 3, 6, 7: mean final validation accuracy against `x`, one line
per `series`, with the 95% interval dotted), capacity (fig 4), emergence (figs 8, 10:
best-seed validation accuracy against log10 model size), zones (fig 1: D_crit and
D_mem against d and the zone map between them). A sweep still training is drawn from
what is there: unfinished runs at their latest evaluation, and the y label says so."""

from __future__ import annotations

import math
from collections.abc import Sequence

import plotext as plt
from rich.table import Table

from grokterm import analysis
from grokterm.claims import NO_DATA, REPRODUCED, UNCERTAIN, ClaimResult
from grokterm.records import MetricPoint, Run
from grokterm.series import SERIES

MAX_CURVES = 8  # more runs than this on one plot is unreadable in a terminal
ZONE_CHARS = {"progression": "P", "ungrokking": "U", "grokking": "G", "semi-grokking": "S"}
SO_FAR = " - unfinished runs at their latest step"


def draw(
    plot: dict, runs: Sequence[Run], curves: dict[int, list[MetricPoint]], size=(100, 28)
) -> str:
    """The figure as text (with ANSI colours) for the runs of one sweep."""
    _start(*size)
    kind = plot["kind"]
    if kind == "curves":
        _curves(runs, curves, size, plot.get("metric", "norm"))
    elif kind == "final":
        _final(plot, runs)
    elif kind == "capacity":
        _capacity(runs)
    elif kind == "emergence":
        _emergence(plot, runs)
    else:
        raise ValueError(f"draw: kind {kind!r} needs two sweeps; use draw_zones")
    return plt.build()


def draw_zones(crit: dict[int, float | None], mem: dict[int, float], ns: Sequence[int],
               size=(100, 20)) -> str:  # fmt: skip
    """Fig 1: the measured D_crit(d) and D_mem(d), then the zone of every (d, n)."""
    _start(*size)
    for curve, label in ((crit, "D_crit: grokking needs at least"), (mem, "D_mem: capacity")):
        known = sorted((d, v) for d, v in curve.items() if v is not None)
        if known:
            plt.plot([d for d, _ in known], [v for _, v in known], label=label, marker="dot")
    plt.xlabel("hidden size d")
    plt.ylabel("training pairs")
    plt.title("Fig 1: memorization capacity and critical dataset size")
    lines = [
        plt.build(),
        "",
        "zones (P progression, U ungrokking, S semi-grokking, G grokking,"
        " ? a curve not measured at this d):",
    ]
    ds = sorted(set(crit) | set(mem))
    lines.append("n \\ d  " + " ".join(f"{d:>4}" for d in ds))
    for n in sorted(ns, reverse=True):
        cells = [ZONE_CHARS.get(analysis.zone(d, n, crit, mem), "?") for d in ds]
        lines.append(f"{n:>6} " + " ".join(f"{c:>4}" for c in cells))
    return "\n".join(lines)


def claims_table(results: Sequence[ClaimResult]) -> Table:
    table = Table(title="the paper's claims", show_lines=False)
    table.add_column("claim")
    table.add_column("verdict", no_wrap=True)
    table.add_column("numbers")
    table.add_column("evidence")
    table.add_column("margin")
    colour = {REPRODUCED: "green", NO_DATA: "yellow", UNCERTAIN: "magenta"}
    for r in results:
        verdict = f"[{colour.get(r.status, 'red')}]{r.status}[/]"
        table.add_row(r.text, verdict, r.detail, r.evidence, r.margin)
    return table


def _start(width: int, height: int) -> None:
    plt.clf()
    plt.clear_figure()
    plt.limitsize(False, False)  # the size asked for, even past the terminal (or a pipe)
    plt.plotsize(width, height)
    plt.theme("clear")


def _log_ticks(lo: float, hi: float) -> None:
    """plotext cannot redraw a log axis: plot log10(x) and label the decades."""
    decades = range(math.floor(lo), math.ceil(hi) + 1)
    plt.xticks(list(decades), [f"1e{k}" for k in decades])


def _count(n: int) -> str:
    """A parameter count as a tick label: 819712 -> 820k."""
    if n >= 1e6:
        return f"{n / 1e6:.3g}M"
    if n >= 1e3:
        return f"{n / 1e3:.3g}k"
    return str(n)


def _downsample(xs: list, ys: list, points: int) -> tuple[list, list]:
    if len(xs) <= points:
        return xs, ys
    idx = sorted({round(i * (len(xs) - 1) / (points - 1)) for i in range(points)})
    return [xs[i] for i in idx], [ys[i] for i in idx]


def _curves(runs, curves, size, metric: str) -> None:
    """Accuracy on the left; on the right the parameter norm, or another series."""
    shown = [r for r in runs if curves.get(r.id)][:MAX_CURVES]
    plt.subplots(1, 2)
    width = size[0] // 2
    panels = [("accuracy (train -, validation .)", ("train_acc", "val_acc")),
              (SERIES[metric].axis, (metric,))]  # fmt: skip
    for col, (title, keys) in enumerate(panels, 1):
        plt.subplot(1, col)
        plt.title(title)
        plt.xlabel("step")
        for i, run in enumerate(shown):
            rows = [m for m in curves[run.id] if m.step > 0]
            xs = [math.log10(m.step) for m in rows]
            for key in keys:
                ys = [SERIES[key].shown(m.get(key)) for m in rows]
                x, y = _downsample(xs, ys, width)
                label = run.key if key != "val_acc" else None
                plt.plot(
                    x, y, label=label, color=i + 1, marker="dot" if key == "val_acc" else "braille"
                )
        if shown:
            steps = [m.step for r in shown for m in curves[r.id] if m.step > 0]
            _log_ticks(math.log10(min(steps)), math.log10(max(steps)))
        if col == 1 or SERIES[metric].is_accuracy:
            plt.ylim(0, 1)


def _so_far(runs) -> tuple[list[dict], str]:
    """The runs to draw (finished ones, and running or stopped ones that have been
    evaluated; not diverged ones) and the note the y label needs for the unfinished."""
    shown = [
        r for r in runs if r.status == "done" or (r.status not in ("diverged", "failed") and r.step)
    ]
    return shown, SO_FAR if any(r.status != "done" for r in shown) else ""


def _final(plot, runs) -> None:
    x, series = plot.get("x", "d"), plot.get("series")
    metric = plot.get("metric", "val_acc")
    shown, note = _so_far(runs)
    points = analysis.aggregate(shown, analysis.final(metric))
    groups: dict = {}
    for p in points:
        groups.setdefault(p.grid.get(series) if series else None, []).append(p)
    for i, (value, members) in enumerate(sorted(groups.items(), key=lambda kv: str(kv[0]))):
        members.sort(key=lambda p: p.grid[x])
        xs = [p.grid[x] for p in members]
        label = f"{series}={value}" if series else "mean"
        plt.plot(xs, [p.mean for p in members], label=label, color=i + 1, marker="braille")
        plt.scatter(xs, [p.low for p in members], color=i + 1, marker=".")
        plt.scatter(xs, [p.high for p in members], color=i + 1, marker=".")
    if SERIES[metric].is_accuracy:
        plt.ylim(0, 1)
    plt.xlabel(x)
    plt.ylabel(f"final {metric} (mean, 95% CI dotted){note}")


def _capacity(runs) -> None:
    shown, note = _so_far(runs)
    points = sorted(analysis.d_mem(shown), key=lambda p: p.grid["d"])
    xs = [p.grid["d"] for p in points]
    plt.plot(xs, [p.mean for p in points], label="pairs memorized (mean)", marker="braille")
    plt.scatter(xs, [p.low for p in points], marker=".", label="95% CI")
    plt.scatter(xs, [p.high for p in points], marker=".")
    plt.xlabel("hidden size d")
    plt.ylabel(f"training pairs predicted correctly{note}")


def _emergence(plot, runs) -> None:
    series = plot.get("series", "n_mem")
    shown, note = _so_far(runs)
    groups: dict = {}
    for p in analysis.aggregate([analysis.with_size(r) for r in shown]):
        groups.setdefault(p.grid.get(series), []).append(p)
    sizes: set[int] = set()
    for i, (value, members) in enumerate(sorted(groups.items(), key=lambda kv: str(kv[0]))):
        members.sort(key=lambda p: p.grid["n_params"])
        xs = [math.log10(p.grid["n_params"]) for p in members]
        sizes |= {p.grid["n_params"] for p in members}
        plt.plot(
            xs, [p.best for p in members], label=f"{series}={value}", color=i + 1, marker="braille"
        )
    # Tick the ladder's rungs: a quick ladder can lie inside one decade (213k, 820k).
    rungs = sorted(sizes)
    if rungs:
        plt.xticks([math.log10(n) for n in rungs], [_count(n) for n in rungs])
    plt.ylim(0, 1)
    plt.xlabel("parameters")
    plt.ylabel(f"best-seed validation accuracy{note}")
