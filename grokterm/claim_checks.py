"""How each kind of claim is checked, and how sure the verdict is. No torch.

A verdict is REPRODUCED only where it holds beyond the evidence's spread: a label
carried by a majority of seeds whose own labels are certain (grokterm.labels), a mean
whose whole 95% interval satisfies the bound, a trend that holds beyond the seeds'
intervals, an accuracy clear of its bound by VAL_MARGIN (what the same run varies by
across machines). A trend that fails on the means is NOT_REPRODUCED; one that holds on
the means but not beyond the spread, or on one seed per point (no spread at all), is
UNCERTAIN, as are ties and runs within a margin of a line that could tip a label. A
bound on a mean or on D_crit is judged on its interval (one seed: the value, widened by
the margin or the grid's bracket). Where the grid cannot decide: NO_DATA. Each check returns the verdict, the
numbers, the seed-level evidence and the margin."""

from __future__ import annotations

import math
import operator
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace

from grokterm import analysis, labels, wording
from grokterm.labels import VAL_MARGIN
from grokterm.records import Run

REPRODUCED, NOT_REPRODUCED, UNCERTAIN, NO_DATA = (
    "reproduced", "not reproduced", "uncertain", "not enough data")  # fmt: skip
OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}
NORM_EPS = 0.5  # a norm change smaller than this is no change (the norm is ~15-50)
Check = tuple[str, str, str, str]  # status, numbers, evidence, margin


class NoData(Exception):
    pass


def matching(runs: Sequence[Run], where: dict | None) -> list[Run]:
    return [
        r for r in runs if all(getattr(r.config, k, None) == v for k, v in (where or {}).items())
    ]


def points(runs, where: dict | None = None, value=None, bounds=(0.0, 1.0)) -> list[analysis.Point]:
    """The grid points of the matching runs; intervals clipped to the value's range (an
    accuracy's by default: a t interval of two seeds can reach below 0)."""
    found = analysis.aggregate(matching(runs, where), value)
    if not found:
        raise NoData(
            f"no finished runs with {wording.where(where)}" if where else "no finished runs"
        )
    lo, hi = bounds
    return [replace(p, low=max(p.low, lo), high=min(p.high, hi)) for p in found]


def _along(pts: Sequence[analysis.Point], x: str) -> list[analysis.Point]:
    """One point per value of x, averaging other grid keys away (intervals averaged too)."""
    by_x: dict[float, list[analysis.Point]] = {}
    for p in pts:
        by_x.setdefault(p.grid[x], []).append(p)
    out = []
    for k, ps in sorted(by_x.items()):
        low, mean, high = (
            sum(getattr(p, a) for p in ps) / len(ps) for a in ("low", "mean", "high")
        )
        out.append(analysis.Point({x: k}, min(p.n for p in ps), mean, low, high,
                                  max(p.best for p in ps), {}))  # fmt: skip
    return out


def _seeds(pts: Sequence[analysis.Point]) -> str:
    fewest = min(p.n for p in pts)
    return f"{fewest} seed{'s' * (fewest > 1)} per point" + (
        " (no spread to test against)" if fewest < 2 else ", 95% intervals"
    )


def _fmt(pts: Sequence[analysis.Point], x: str) -> str:
    return ", ".join(f"{p.grid[x]:g}: {p.mean:.2f}" for p in pts)


def _sure(holds_on_means: bool, beyond_noise: bool, against: bool, pts) -> str:
    """A trend's status: failing on the means or beyond the noise fails; holding beyond
    the noise, with seeds, passes; holding on the means only is uncertain."""
    if against or not holds_on_means:
        return NOT_REPRODUCED
    return REPRODUCED if beyond_noise and min(p.n for p in pts) >= 2 else UNCERTAIN


def _within(low: float, high: float, op: str, bound: float, accuracy: bool) -> str:
    """The status of `value op bound` for a value known to lie in [low, high]; an
    accuracy's interval is widened by VAL_MARGIN (run-to-run noise), inside [0, 1]."""
    if accuracy:
        low, high = max(low - VAL_MARGIN, 0.0), min(high + VAL_MARGIN, 1.0)
    ends = (OPS[op](low, bound), OPS[op](high, bound))
    return REPRODUCED if all(ends) else NOT_REPRODUCED if not any(ends) else UNCERTAIN


def label(claim, runs) -> Check:
    found = [r for r in matching(runs, claim.where) if r.label]
    if not found:
        raise NoData("no labelled runs" if matching(runs, claim.where) else "")
    alt = {r.id: r.info.alt if r.info else None for r in found}
    sure = [r for r in found if r.label == claim.label and not alt[r.id]]
    maybe = [r for r in found if r not in sure and claim.label in (r.label, alt[r.id])]
    against = len(found) - len(sure) - len(maybe)
    if len(sure) > len(maybe) + against:
        status = REPRODUCED
    elif len(sure) + len(maybe) >= against:
        status = UNCERTAIN  # a tie, or uncertain runs decide it
    else:
        status = NOT_REPRODUCED
    counts = Counter(r.info.shown if r.info else r.label for r in found)
    numbers = "; ".join(f"{k} x{v}" for k, v in sorted(counts.items()))
    vals = ", ".join(f"{r.value('val_acc'):.3f}" for r in found if r.value("val_acc") is not None)
    tie = status == UNCERTAIN and len(sure) + len(maybe) == against
    evidence = (f"{len(sure)} of {len(found)} seeds {claim.label}"
                + (f", {len(maybe)} uncertain" if maybe else "") + (" (a tie)" if tie else ""))  # fmt: skip
    margins = [r.info.note for r in found if alt[r.id] and r.info.note]
    margin = margins[0] if margins else _closest(found)
    return status, f"{numbers}; final val {vals}", evidence, margin


def _closest(runs: Sequence[Run]) -> str:
    """The margin of the run nearest a line that decides its label."""
    found = [m for r in runs if r.info and (m := labels.margin(r.info))]
    return min(found)[1] if found else ""


def final(claim, runs) -> Check:
    accuracy = claim.metric.endswith("_acc")
    bounds = (0.0, 1.0) if accuracy else (-math.inf, math.inf)
    pts = points(runs, claim.where, analysis.final(claim.metric), bounds)
    mean = sum(p.mean for p in pts) / len(pts)
    low, high = sum(p.low for p in pts) / len(pts), sum(p.high for p in pts) / len(pts)
    status = _within(low, high, claim.op, claim.value, accuracy)
    numbers = f"mean final {claim.metric} {mean:.3f} ({claim.op} {claim.value})"
    margin = f"{mean - claim.value:+.3f} from the bound; 95% interval {low:.3f} .. {high:.3f}" + (
        f" (+-{VAL_MARGIN} for run-to-run noise)" if accuracy else "")  # fmt: skip
    return status, numbers, _seeds(pts), margin


def range_(claim, runs) -> Check:
    lo, hi = claim.between
    pts = [p for p in _along(points(runs, claim.where), claim.x) if lo <= p.grid[claim.x] <= hi]
    if not pts:
        raise NoData(f"no finished runs with {claim.x} in [{lo}, {hi}]")
    each = {_within(p.low, p.high, claim.op, claim.value, accuracy=True) for p in pts}
    status = (
        NOT_REPRODUCED
        if NOT_REPRODUCED in each
        else REPRODUCED
        if each == {REPRODUCED}
        else UNCERTAIN
    )
    closest = min(pts, key=lambda p: abs(p.mean - claim.value))
    margin = (f"closest: {claim.x}={closest.grid[claim.x]:g} at {closest.mean:.3f} ({claim.op} "
              f"{claim.value}; +-{VAL_MARGIN} for run-to-run noise)")  # fmt: skip
    return status, f"mean val by {claim.x}: {_fmt(pts, claim.x)}", _seeds(pts), margin


def double_descent(claim, runs) -> Check:
    pts = _along(points(runs, claim.where), claim.x)
    if len(pts) < 3:
        raise NoData(f"{len(pts)} values of {claim.x}, need 3")
    best = None  # (smaller of the two drops on the means, beyond noise)
    for i in range(1, len(pts) - 1):
        before, after = max(pts[:i], key=lambda p: p.mean), max(pts[i + 1 :], key=lambda p: p.mean)
        dip = pts[i]
        depth = min(before.mean - dip.mean, after.mean - dip.mean)
        beyond = dip.high < before.low and dip.high < after.low
        if best is None or (depth >= claim.drop, beyond, depth) > (
            best[0] >= claim.drop,
            best[1],
            best[0],
        ):
            best = (depth, beyond, dip.grid[claim.x])
    depth, beyond, at = best
    status = _sure(depth >= claim.drop, beyond, False, pts)
    margin = (
        f"deepest dip at {claim.x}={at:g}: {depth:.3f} below both sides (needs {claim.drop})"
        + ("" if beyond else ", within the seeds' spread")
    )
    return status, f"mean val by {claim.x}: {_fmt(pts, claim.x)}", _seeds(pts), margin


def monotone(claim, runs) -> Check:
    pts = _along(points(runs, claim.where), claim.x)
    if len(pts) < 2:
        raise NoData(f"{len(pts)} values of {claim.x}, need 2")
    tol = 0.05 if claim.tolerance is None else claim.tolerance
    pairs = list(zip(pts, pts[1:]))
    worst = min(b.mean - a.mean for a, b in pairs)
    against = any(b.high < a.low - tol for a, b in pairs)
    status = _sure(worst >= -tol, pts[-1].low > pts[0].high, against, pts)
    margin = f"largest fall {max(0.0, -worst):.3f} (tolerance {tol}); first to last {pts[-1].mean - pts[0].mean:+.3f}"
    return status, f"mean val by {claim.x}: {_fmt(pts, claim.x)}", _seeds(pts), margin


def d_crit_intervals(runs) -> tuple[dict, dict, list[analysis.Point]]:
    """D_crit per d (the seed mean's crossing) and the interval (lo, hi] it lies in: from
    where the upper end of the mean's 95% interval crosses (earliest) to where its lower
    end does (latest); one seed gives the grid's bracket. Never reached: (largest n, inf]."""
    pts = points([analysis.with_config(r, "d", "n_train") for r in runs])
    crit = analysis.d_crit(pts)
    spans = {}
    for d in crit:
        row = sorted(analysis.select(pts, {"d": d}), key=lambda p: p.grid["n_train"])
        ns = [p.grid["n_train"] for p in row]
        spans[d] = (_bracket(ns, [p.high for p in row])[0], _bracket(ns, [p.low for p in row])[1])
    return crit, spans, pts


def _bracket(ns: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    for i, y in enumerate(ys):
        if y >= analysis.D_CRIT_VAL:
            return (ns[i - 1] if i else -math.inf), ns[i]
    return ns[-1], math.inf


def _span(lo: float, hi: float) -> str:
    return f"({'-inf' if lo == -math.inf else f'{lo:g}'}, {'inf' if hi == math.inf else f'{hi:g}'}]"


def d_crit(claim, runs) -> Check:
    crit, spans, pts = d_crit_intervals(runs)
    if claim.d not in crit:
        raise NoData(f"no finished runs with d = {claim.d}")
    lo, hi = spans[claim.d]
    # D_crit lies in (lo, hi]: the claim holds for the whole interval, for none, or for part
    status = _within(math.nextafter(lo, math.inf), hi, claim.op, claim.value, accuracy=False)
    value = crit[claim.d]
    shown = "never reached" if value is None else f"{value:.0f}"
    numbers = f"D_crit(d={claim.d}) = {shown} ({claim.op} {claim.value})"
    row = analysis.select(pts, {"d": claim.d})
    return status, numbers, _seeds(row), f"D_crit in {_span(lo, hi)}"


def d_crit_trend(claim, runs) -> Check:
    crit, spans, pts = d_crit_intervals(runs)
    if len(crit) < 2:
        raise NoData("D_crit measured for fewer than 2 sizes")
    if all(v is None for v in crit.values()):
        raise NoData("no size reaches the D_crit line at the n measured")
    tol = 0 if claim.tolerance is None else claim.tolerance
    ds = sorted(crit)
    rises = any(spans[b][0] >= spans[a][1] + tol for a, b in zip(ds, ds[1:]))
    falls = spans[ds[-1]][1] <= spans[ds[0]][0]
    means = [crit[d] if crit[d] is not None else math.inf for d in ds]
    # a step up within the intervals (2949 -> 2950, both in (2500, 3000]) is noise, not a rise
    on_means = means[-1] < means[0]
    status = _sure(on_means, falls, rises, pts)
    numbers = "D_crit by d: " + ", ".join(
        f"{d}: {'never' if crit[d] is None else f'{crit[d]:.0f}'}" for d in ds)  # fmt: skip
    margin = "intervals " + ", ".join(f"{d}: {_span(*spans[d])}" for d in ds)
    return status, numbers, _seeds(pts), margin


def _capacity(runs) -> list[analysis.Point]:
    pts = analysis.d_mem(runs)
    if not pts:
        raise NoData("no finished runs")
    return sorted(pts, key=lambda p: p.grid["d"])


def capacity_trend(claim, runs) -> Check:
    pts = _capacity(runs)
    if len(pts) < 2:
        raise NoData("capacity measured at fewer than 2 sizes")
    pairs = list(zip(pts, pts[1:]))
    status = _sure(all(b.mean > a.mean for a, b in pairs), all(b.low > a.high for a, b in pairs),
                   any(b.high < a.low for a, b in pairs), pts)  # fmt: skip
    numbers = "capacity by d: " + ", ".join(f"{p.grid['d']}: {p.mean:.0f}" for p in pts)
    smallest = min(b.mean - a.mean for a, b in pairs)
    return status, numbers, _seeds(pts), f"smallest step up {smallest:+.0f} pairs"


def capacity_ci(claim, runs) -> Check:
    pts = [p for p in _capacity(runs) if p.n > 1]
    if not pts:
        raise NoData("no size with 2 or more seeds")
    widest = max((p.high - p.mean) / p.mean for p in pts)
    status = REPRODUCED if widest <= claim.value else NOT_REPRODUCED
    return (
        status,
        f"widest 95% interval +-{widest:.1%} of the mean",
        _seeds(pts),
        (f"{claim.value - widest:+.1%} from the bound"),
    )


def norm_trend(claim, runs) -> Check:
    found = [r for r in matching(runs, claim.where) if r.info and r.info.norm_change is not None]
    if not found:
        raise NoData("no matching run generalized")
    want = -1 if claim.direction == "fall" else 1
    changes = [r.info.norm_change for r in found]
    agree = sum(c * want >= NORM_EPS for c in changes)
    against = sum(c * want <= -NORM_EPS for c in changes)
    # "most runs": a majority that moved the claimed way; an unchanged norm is no vote for it
    if agree * 2 > len(changes):
        status = REPRODUCED
    else:
        status = NOT_REPRODUCED if against * 2 > len(changes) else UNCERTAIN
    shown = ", ".join(f"{c:+.1f}" for c in changes)
    evidence = f"{agree} of {len(changes)} runs {claim.direction}, {against} the other way"
    return (
        status,
        f"norm change through the transition: {shown}",
        evidence,
        (f"smallest |change| {min(abs(c) for c in changes):.1f} (under {NORM_EPS} is none)"),
    )


def bumps(claim, runs) -> Check:
    found = matching(runs, claim.where)
    if not found:
        raise NoData()
    counts = [r.info.bumps if r.info else 0 for r in found]
    with_bumps = sum(c > 0 for c in counts)
    status = REPRODUCED if with_bumps >= claim.min_runs else NOT_REPRODUCED
    return (
        status,
        f"{with_bumps} of {len(found)} runs show bumps (per run: {', '.join(map(str, counts))})",
        (f"{with_bumps} of {len(found)} seeds"),
        f"{with_bumps - claim.min_runs:+d} runs from the bound",
    )


def circuit(claim, runs) -> Check:
    """The generalization circuit (labels.circuit) formed before validation passed
    labels.VAL_HALF ("before"), or not by the end ("never"), in most matching runs
    (those with `label` if given). A lead within one measurement interval is no vote."""
    found = [
        r for r in matching(runs, claim.where) if claim.label is None or r.label == claim.label
    ]
    found = [r for r in found if r.info and r.final.get("restricted_loss") is not None]
    if not found:
        raise NoData(f"no measured {claim.label or 'matching'} runs")
    votes, shown = [], []
    for r in found:
        c, half = r.info.circuit_step, r.info.half_step
        every = r.config.eval_every * max(r.config.measure_every, 1)
        if claim.formed == "never":
            votes.append(c is None)
        elif c is None:
            votes.append(False)
        else:
            lead = (half if half is not None else r.info.last_step + every) - c
            votes.append(None if abs(lead) <= every else lead > 0)
        shown.append(f"circuit {c if c is not None else 'never'}, val {labels.VAL_HALF} at "
                     f"{half if half is not None else 'never'}")  # fmt: skip
    agree, against = votes.count(True), votes.count(False)
    if agree * 2 > len(votes):
        status = REPRODUCED
    else:
        status = NOT_REPRODUCED if against * 2 > len(votes) else UNCERTAIN
    return (
        status,
        "; ".join(shown),
        f"{agree} of {len(votes)} runs agree, {against} against",
        "a lead within one measurement interval is no vote" if None in votes else "",
    )
