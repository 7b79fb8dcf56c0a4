"""Reading many runs: seeds aggregated into grid points with their spread, and the
curves derived from them (D_crit, D_mem, zones, emergence). No torch. A single run's
label is grokterm.labels'."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from grokterm.records import Run

# -- aggregates over seeds and derived curves ---------------------------------------

D_CRIT_VAL = 0.9  # "near-perfect" mean final validation accuracy, for D_crit
SEMI_BAND = 1000  # paper: the semi-grokking interval spans about 1000 data points
EMERGE_VAL = 0.5  # best-seed validation accuracy that counts as the ability emerging

# two-sided 95% Student t quantiles by degrees of freedom (no scipy needed)
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
        9: 2.262, 10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131,
        20: 2.086, 25: 2.060, 30: 2.042}  # fmt: skip


@dataclass
class Point:
    """The runs of one grid point (all seeds): mean with 95% interval, best seed."""

    grid: dict  # grid values without the seed
    n: int
    mean: float
    low: float
    high: float
    best: float
    labels: dict[str, int]  # label -> number of seeds

    @property
    def label(self) -> str | None:
        """The seeds' majority label."""
        return max(self.labels, key=self.labels.get) if self.labels else None

    @property
    def agree(self) -> bool:
        return len(self.labels) <= 1


def mean_ci(values: Sequence[float]) -> tuple[float, float, float]:
    """Mean and its 95% confidence interval (Student t); a single value has none."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, mean, mean
    sd = (sum((v - mean) ** 2 for v in values) / (n - 1)) ** 0.5
    df = n - 1
    t = _T95[max(k for k in _T95 if k <= df)] if df <= 30 else 1.96  # conservative between rows
    half = t * sd / n**0.5
    return mean, mean - half, mean + half


def final(name: str = "val_acc") -> Callable[[Run], float | None]:
    """A run's latest value of a series: what aggregate averages by default."""
    return lambda r: r.value(name)


def aggregate(
    runs: Sequence[Run], value: Callable[[Run], float | None] | None = None
) -> list[Point]:
    """Group runs by grid point (their grid without the seed), averaging `value`
    (default: the final validation accuracy)."""
    value = value or final()
    groups: dict[tuple, list[Run]] = {}
    for r in runs:
        if value(r) is None:
            continue
        key = tuple(sorted((k, v) for k, v in r.grid.items() if k != "seed"))
        groups.setdefault(key, []).append(r)
    points = []
    for key, members in groups.items():
        values = [value(r) for r in members]
        labels: dict[str, int] = {}
        for r in members:
            if r.label:
                labels[r.label] = labels.get(r.label, 0) + 1
        mean, low, high = mean_ci(values)
        points.append(Point(dict(key), len(values), mean, low, high, max(values), labels))
    return sorted(points, key=lambda p: sorted(p.grid.items()))


@dataclass
class Pooled:
    """What pooling another sweep's runs into a sweep's did."""

    added: int  # runs of a configuration this sweep trains, under a (point, seed) it lacks
    present: int  # runs of a (point, seed) the sweep already has (kept as they were)
    other: int  # runs of other settings (rate, budget, task, ...): not comparable, left out


def pool(runs: Sequence[Run], others: Sequence[Run]) -> tuple[list[Run], Pooled]:
    """The runs plus those of others (more seeds, say, from a calibration sweep) that
    differ from them only in the grid's keys and the seed. Each added run's grid is
    rebuilt from its configuration under this sweep's grid keys, so that it joins the
    same grid points."""
    keys = [k for k in dict.fromkeys(k for r in runs for k in r.grid) if k != "seed"]

    def settings(r: Run) -> str:
        config = r.config.to_dict()
        return repr(sorted((k, v) for k, v in config.items() if k not in keys and k != "seed"))

    known = {settings(r) for r in runs}
    seen = {repr(sorted(r.grid.items())) for r in runs}
    pooled, counts = list(runs), Pooled(0, 0, 0)
    for r in others:
        if settings(r) not in known or any(not hasattr(r.config, k) for k in keys):
            counts.other += 1
            continue
        grid = {k: getattr(r.config, k) for k in keys} | {"seed": r.config.seed}
        if repr(sorted(grid.items())) in seen:
            counts.present += 1
            continue
        seen.add(repr(sorted(grid.items())))
        pooled.append(replace(r, grid=grid, key=" ".join(f"{k}={v}" for k, v in grid.items())))
        counts.added += 1
    return pooled, counts


def with_size(run: Run) -> Run:
    """A run whose grid also carries its model size, to group points by n_params."""
    return with_config(run, "n_params")


def with_config(run: Run, *keys: str) -> Run:
    """A run whose grid also carries these config values (a sweep that fixed d in
    [run] still has a d for D_crit per d)."""
    return replace(run, grid=run.grid | {k: getattr(run.config, k) for k in keys})


def select(points: Sequence[Point], where: dict) -> list[Point]:
    return [p for p in points if all(p.grid.get(k) == v for k, v in where.items())]


def crossing(xs: Sequence[float], ys: Sequence[float], threshold: float) -> float | None:
    """Smallest x where y reaches the threshold, linearly interpolated between the
    points around the first crossing. None if y never reaches it."""
    pairs = sorted(zip(xs, ys))
    for i, (x, y) in enumerate(pairs):
        if y >= threshold:
            if i == 0:
                return float(x)
            x0, y0 = pairs[i - 1]
            return x0 + (threshold - y0) * (x - x0) / (y - y0)
    return None


def d_crit(points: Sequence[Point], threshold: float = D_CRIT_VAL) -> dict[int, float | None]:
    """Critical dataset size per hidden size: the smallest n_train whose mean final
    validation accuracy reaches the threshold (points carry d and n_train)."""
    out = {}
    for d in sorted({p.grid["d"] for p in points}):
        row = select(points, {"d": d})
        out[d] = crossing([p.grid["n_train"] for p in row], [p.mean for p in row], threshold)
    return out


def d_mem(runs: Sequence[Run]) -> list[Point]:
    """Memorization capacity per grid point: training pairs predicted correctly at
    the end (train accuracy times n_train), over seeds."""

    def pairs(r: Run) -> float | None:
        acc = r.value("train_acc")
        return None if acc is None else acc * r.config.n_train

    return aggregate(runs, pairs)


def zone(d: float, n: float, crit: dict[float, float], mem: dict[float, float]) -> str | None:
    """Fig 1: the training dynamic expected at (d, n) from the two measured curves,
    each interpolated linearly in d; None outside the sizes both were measured at
    (fig 4 quick measures capacity at d <= 32, fig 3 quick D_crit at d >= 32)."""
    c, m = _interp(crit, d), _interp(mem, d)
    if c is None or m is None:
        return None
    if n > m:
        return "progression"
    if n >= c:
        return "grokking"
    return "semi-grokking" if n >= c - SEMI_BAND else "ungrokking"


def _interp(curve: dict[float, float], x: float) -> float | None:
    known = sorted((k, v) for k, v in curve.items() if v is not None)
    if not known or not known[0][0] <= x <= known[-1][0]:
        return None  # not extrapolated: a zone is drawn only where it was measured
    for (x0, y0), (x1, y1) in zip(known, known[1:]):
        if x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return known[-1][1]  # x is the largest (or only) size measured


def emergence_size(points: Sequence[Point], threshold: float = EMERGE_VAL) -> float | None:
    """Smallest model size (points carry n_params) whose best seed reaches the
    threshold: the size at which an ability emerges (figs 8, 10)."""
    ok = [p.grid["n_params"] for p in points if p.best >= threshold]
    return min(ok) if ok else None
