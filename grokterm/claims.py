"""The paper's claims, as written in presets, evaluated on a stored sweep. No torch.

Each `[[claims]]` table has a `kind`, a `text` and the kind's keys:

| kind | keys | holds when |
| --- | --- | --- |
| label | where, label | the seeds' majority label at the matching point is `label` |
| final | where, op, value, [metric] | the mean final metric (val_acc) there satisfies `op value` |
| range | where, x, between, op, value | every point with x in [lo, hi] satisfies it |
| double_descent | where, x, [drop] | along x the mean rises, falls by >= drop, and rises again by >= drop |
| monotone | where, x, [tolerance] | along x the mean never falls by more than tolerance |
| d_crit | d, op, value | the critical dataset size D_crit(d) satisfies `op value` |
| d_crit_trend | [tolerance] | D_crit does not grow with d (by more than tolerance) |
| capacity_trend | | memorization capacity grows with d |
| capacity_ci | value | every 95% interval of the capacity is within +-value of its mean (relative) |
| norm_trend | where, direction | most matching runs' norm falls ("fall") or rises ("rise") through the transition |
| bumps | where, min_runs | at least min_runs matching runs show bumps in train accuracy |
| emergence_ratio | op, value | emergence size with memorization data over the single-task size |
| emergence_compare | smaller, larger | the emergence size where `smaller` holds is below that where `larger` holds |
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass, field, fields

from grokterm import analysis
from grokterm.records import Run
from grokterm.series import unknown as unknown_series

OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}
REPRODUCED, NOT_REPRODUCED, NO_DATA = "reproduced", "not reproduced", "not enough data"


@dataclass(frozen=True)
class Claim:
    """One `[[claims]]` table of a preset, checked at load (parse_claim)."""

    kind: str
    text: str = ""
    where: dict = field(default_factory=dict)  # run fields the matching runs have
    source: str | None = None  # zones presets: the sweep the claim is checked on
    label: str | None = None
    op: str | None = None
    value: float | None = None
    metric: str = "val_acc"
    x: str | None = None
    between: list | None = None
    drop: float = 0.1
    tolerance: float | None = None
    d: int | None = None
    direction: str | None = None
    min_runs: int | None = None
    smaller: dict | None = None
    larger: dict | None = None


class ClaimProblem(ValueError):
    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}")
        self.key, self.message = key, message


@dataclass
class ClaimResult:
    text: str
    status: str  # REPRODUCED, NOT_REPRODUCED or NO_DATA
    detail: str  # the numbers behind the verdict


def check_claims(claims: Sequence[Claim], runs: Sequence[Run]) -> list[ClaimResult]:
    """Evaluate every claim on the finished runs."""
    done = [analysis.with_size(r) for r in runs if r.status == "done"]
    return [check(claim, done) for claim in claims]


def check(claim: Claim, runs: Sequence[Run]) -> ClaimResult:
    try:
        status, detail = CHECKS[claim.kind](claim, runs)
    except _NoData as err:
        status, detail = NO_DATA, str(err) or "no finished runs match"
    return ClaimResult(claim.text or claim.kind, status, detail)


class _NoData(Exception):
    pass


# The keys each kind cannot do without (the table above; `where` is always optional).
REQUIRED = {
    "label": ("label",), "final": ("op", "value"), "range": ("x", "between", "op", "value"),
    "double_descent": ("x",), "monotone": ("x",), "d_crit": ("d", "op", "value"),
    "d_crit_trend": (), "capacity_trend": (), "capacity_ci": ("value",),
    "norm_trend": ("direction",), "bumps": ("min_runs",), "emergence_ratio": ("op", "value"),
    "emergence_compare": ("smaller", "larger"),
}  # fmt: skip


def parse_claim(table: dict) -> Claim:
    """A claim table as a Claim; ClaimProblem names the key that cannot be checked."""
    kind = table.get("kind")
    if kind not in REQUIRED:
        raise ClaimProblem("kind", f"expected one of {', '.join(REQUIRED)}, got {kind!r}")
    known = [f.name for f in fields(Claim)]
    for key in table:
        if key not in known:
            raise ClaimProblem(key, f"unknown key; expected one of {', '.join(known)}")
    for key in REQUIRED[kind]:
        if key not in table:
            raise ClaimProblem(key, f"a {kind} claim needs it")
    if "op" in table and table["op"] not in OPS:
        raise ClaimProblem("op", f"expected one of {', '.join(OPS)}, got {table['op']!r}")
    if not isinstance(table.get("where", {}), dict):
        raise ClaimProblem("where", f"expected a table such as {{d = 32}}, got {table['where']!r}")
    if problem := unknown_series(table.get("metric", "val_acc")):
        raise ClaimProblem("metric", problem)
    return Claim(**table)


def _matching(runs: Sequence[Run], where: dict | None) -> list[Run]:
    return [
        r for r in runs if all(getattr(r.config, k, None) == v for k, v in (where or {}).items())
    ]


def _points(runs, where: dict | None = None, value=None) -> list[analysis.Point]:
    matching = _matching(runs, where)
    points = analysis.aggregate(matching, value)
    if not points:
        raise _NoData(f"no finished runs with {where}" if where else "no finished runs")
    return points


def _series(points, x: str) -> list[tuple[float, float]]:
    """(x, mean) along one axis, averaging anything else away."""
    by_x: dict[float, list[float]] = {}
    for p in points:
        by_x.setdefault(p.grid[x], []).append(p.mean)
    return sorted((k, sum(v) / len(v)) for k, v in by_x.items())


def _verdict(ok: bool) -> str:
    return REPRODUCED if ok else NOT_REPRODUCED


def _fmt_series(series) -> str:
    return ", ".join(f"{x:g}: {y:.2f}" for x, y in series)


def _label(claim, runs):
    points = _points(runs, claim.where)
    labels: dict[str, int] = {}
    for p in points:
        for k, v in p.labels.items():
            labels[k] = labels.get(k, 0) + v
    if not labels:
        raise _NoData("no labelled runs")
    top = max(labels, key=labels.get)
    seeds = ", ".join(f"{k} x{v}" for k, v in sorted(labels.items()))
    return _verdict(top == claim.label), f"label {top} ({seeds}); final val {points[0].mean:.3f}"


def _final(claim, runs):
    metric = claim.metric
    points = _points(runs, claim.where, analysis.final(metric))
    mean = sum(p.mean for p in points) / len(points)
    ok = OPS[claim.op](mean, claim.value)
    return _verdict(ok), f"mean final {metric} {mean:.3f} ({claim.op} {claim.value})"


def _range(claim, runs):
    lo, hi = claim.between
    series = [(x, y) for x, y in _series(_points(runs, claim.where), claim.x) if lo <= x <= hi]
    if not series:
        raise _NoData(f"no finished runs with {claim.x} in [{lo}, {hi}]")
    ok = all(OPS[claim.op](y, claim.value) for _, y in series)
    return _verdict(ok), f"mean val by {claim.x}: {_fmt_series(series)}"


def _double_descent(claim, runs):
    series = _series(_points(runs, claim.where), claim.x)
    if len(series) < 3:
        raise _NoData(f"{len(series)} values of {claim.x}, need 3")
    drop = claim.drop
    ys = [y for _, y in series]
    ok = any(
        max(ys[:i]) - ys[i] >= drop and max(ys[i + 1 :]) - ys[i] >= drop
        for i in range(1, len(ys) - 1)
    )
    return _verdict(ok), f"mean val by {claim.x}: {_fmt_series(series)}"


def _monotone(claim, runs):
    series = _series(_points(runs, claim.where), claim.x)
    if len(series) < 2:
        raise _NoData(f"{len(series)} values of {claim.x}, need 2")
    tol = 0.05 if claim.tolerance is None else claim.tolerance
    ok = all(b[1] >= a[1] - tol for a, b in zip(series, series[1:]))
    return _verdict(ok), f"mean val by {claim.x}: {_fmt_series(series)}"


def _d_crit_of(runs) -> tuple[dict, dict[int, str]]:
    """D_crit per d, and how to show it: reached already at the smallest n measured
    means D_crit is at most that n."""
    points = _points([analysis.with_config(r, "d", "n_train") for r in runs])
    crit = analysis.d_crit(points)
    shown = {}
    for d, value in crit.items():
        if value is None:
            shown[d] = "never reached"
            continue
        smallest = min(p.grid["n_train"] for p in points if p.grid["d"] == d)
        shown[d] = f"<= {value:.0f}" if value == smallest else f"{value:.0f}"
    return crit, shown


def _d_crit(claim, runs):
    crit, shown = _d_crit_of(runs)
    if claim.d not in crit:
        raise _NoData(f"no finished runs with d = {claim.d}")
    value = crit[claim.d]
    ok = value is not None and OPS[claim.op](value, claim.value)
    detail = f"D_crit(d={claim.d}) = {shown[claim.d]} ({claim.op} {claim.value})"
    return _verdict(ok), detail


def _d_crit_trend(claim, runs):
    crit, shown = _d_crit_of(runs)
    crit = {d: v for d, v in crit.items() if v is not None}
    if len(crit) < 2:
        raise _NoData("D_crit reached for fewer than 2 sizes")
    tol = 100 if claim.tolerance is None else claim.tolerance
    values = [crit[d] for d in sorted(crit)]
    ok = all(b <= a + tol for a, b in zip(values, values[1:]))
    return _verdict(ok), "D_crit by d: " + ", ".join(f"{d}: {shown[d]}" for d in sorted(crit))


def _capacity(runs):
    points = analysis.d_mem(runs)
    if len(points) < 1:
        raise _NoData("no finished runs")
    return sorted(points, key=lambda p: p.grid["d"])


def _capacity_trend(claim, runs):
    points = _capacity(runs)
    if len(points) < 2:
        raise _NoData("capacity measured at fewer than 2 sizes")
    means = [p.mean for p in points]
    ok = all(b > a for a, b in zip(means, means[1:]))
    return _verdict(ok), "capacity by d: " + ", ".join(
        f"{p.grid['d']}: {p.mean:.0f}" for p in points
    )


def _capacity_ci(claim, runs):
    points = [p for p in _capacity(runs) if p.n > 1]
    if not points:
        raise _NoData("no size with 2 or more seeds")
    widest = max((p.high - p.mean) / p.mean for p in points)
    return _verdict(widest <= claim.value), f"widest 95% interval +-{widest:.1%} of the mean"


def _norm_trend(claim, runs):
    matching = _matching(runs, claim.where)
    changes = [r.info.norm_change for r in matching if r.info]
    changes = [c for c in changes if c is not None]
    if not changes:
        raise _NoData("no matching run generalized")
    want = -1 if claim.direction == "fall" else 1
    agree = sum(c * want > 0 for c in changes)
    shown = ", ".join(f"{c:+.1f}" for c in changes)
    return _verdict(agree * 2 > len(changes)), f"norm change through the transition: {shown}"


def _bumps(claim, runs):
    matching = _matching(runs, claim.where)
    if not matching:
        raise _NoData()
    counts = [r.info.bumps if r.info else 0 for r in matching]
    with_bumps = sum(c > 0 for c in counts)
    ok = with_bumps >= claim.min_runs
    return _verdict(ok), f"{with_bumps} of {len(matching)} runs show bumps (counts {counts})"


def _emergence(runs, where: dict) -> tuple[float | None, int]:
    """(emergence size or None, the largest size tried) of the runs matching where."""
    points = _points(runs, where)
    return analysis.emergence_size(points), max(p.grid["n_params"] for p in points)


def _emergence_ratio(claim, runs):
    single, _ = _emergence(runs, {"n_mem": 0})
    n_mems = sorted({r.config.n_mem for r in runs} - {0})
    if single is None or not n_mems:
        raise _NoData("needs single-task runs (n_mem = 0) that emerge and multitask runs")
    op, value = OPS[claim.op], claim.value
    parts, holds = [], []
    for n_mem in n_mems:
        size, largest = _emergence(runs, {"n_mem": n_mem})
        if size is not None:
            holds.append(op(size / single, value))
            parts.append(f"n_mem {n_mem}: {_times(size / single)}")
            continue
        # Not emerged up to the largest size tried: the ratio is only bounded below.
        bound = largest / single
        if bound >= value:  # the ratio is above value: a lower bound decides, an upper fails
            holds.append(claim.op in (">=", ">"))
        else:
            holds.append(None)
        parts.append(f"n_mem {n_mem}: not emerged, > {_times(bound)}")
    status = NOT_REPRODUCED if False in holds else NO_DATA if None in holds else REPRODUCED
    return status, f"single-task size {single:.0f} params; " + "; ".join(parts)


def _times(ratio: float) -> str:
    return f"{ratio:.1f}x" if ratio < 10 else f"{ratio:.0f}x"


def _emergence_compare(claim, runs):
    small, _ = _emergence(runs, claim.smaller)
    large, largest = _emergence(runs, claim.larger)
    if small is None and large is None:
        raise _NoData(f"neither {claim.smaller} nor {claim.larger} emerged at the sizes run")
    if small is None:
        return NOT_REPRODUCED, f"{claim.smaller} never emerged"
    if large is None:
        return (
            REPRODUCED,
            f"{claim.smaller} emerged at {small:.0f} params, "
            f"{claim.larger} not up to {largest:.0f}",
        )
    return _verdict(small < large), f"emergence at {small:.0f} vs {large:.0f} params"


CHECKS = {
    "label": _label, "final": _final, "range": _range, "double_descent": _double_descent,
    "monotone": _monotone, "d_crit": _d_crit, "d_crit_trend": _d_crit_trend,
    "capacity_trend": _capacity_trend, "capacity_ci": _capacity_ci, "norm_trend": _norm_trend,
    "bumps": _bumps, "emergence_ratio": _emergence_ratio, "emergence_compare": _emergence_compare,
}  # fmt: skip
