"""Bumps in train accuracy (fig 5: progression climbs in steps): plateaus that are
entered by a rise and left by one, not the jitter of full-batch accuracy nor a climb
that merely speeds up or slows down. No torch.

A bump is a stretch of the curve, smoothed by a running median over SMOOTH evaluations
(more where it jitters more: `smooth`), that is
- at least PLATEAU_EVALS evaluations and PLATEAU_SPAN of the run long, inside a band
  PLATEAU_BAND wide, below the fit (0.99);
- flat: its least-squares rise over its length is under half the band (a steady climb
  passes through every band, but rises by the whole band across it);
- entered by a rise of BUMP_RISE and left by one, each at least LEAVE_RATE times as
  fast (least-squares slope over the rise) as the plateau drifts."""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import accumulate
from statistics import median, pstdev

PLATEAU_EVALS, PLATEAU_SPAN, PLATEAU_BAND = 5, 0.05, 0.05
BUMP_RISE, LEAVE_RATE, SMOOTH = 0.05, 2.0, 5
JITTER = 0.0035  # the jitter a smoothed curve may keep (fig 5's raw curves: 0.002-0.007)
TOP = 0.99  # labels.FIT: a plateau at the fit is the end of training, not a bump


def train_bumps(train: Sequence[float]) -> int:
    """How many plateaus of train accuracy are left by a rise (module docstring)."""
    s = smooth(train)
    n = len(s)
    min_len = max(PLATEAU_EVALS, round(PLATEAU_SPAN * n))
    low_before = list(accumulate(s, min))  # early exits: nothing below, nothing above
    high_after = list(accumulate(reversed(s), max))[::-1]
    bumps, i = 0, 0
    while i < n:
        # a plateau starting here must lie above where the run was and below where it goes
        if low_before[i] > s[i] - BUMP_RISE or high_after[i] < s[i] + BUMP_RISE:
            i += 1
            continue
        j, lo, hi = i + 1, s[i], s[i]  # grow [i, j) while it stays in the band
        while j < n and max(hi, s[j]) - min(lo, s[j]) < PLATEAU_BAND:
            lo, hi, j = min(lo, s[j]), max(hi, s[j]), j + 1
        entered = low_before[i] <= lo - BUMP_RISE
        left = j < n and high_after[j] >= hi + BUMP_RISE
        if j - i >= min_len and hi < TOP and entered and left and _plateau(s, i, j, lo, hi):
            bumps, i = bumps + 1, j
        else:
            i += 1
    return bumps


def _plateau(s: Sequence[float], i: int, j: int, lo: float, hi: float) -> bool:
    length = j - i
    drift = max(_slope(s[i:j]), 0.0)
    if drift * length >= PLATEAU_BAND / 2:
        return False
    enter = next(k for k in range(i, -1, -1) if s[k] <= lo - BUMP_RISE)
    leave = next(k for k in range(j, len(s)) if s[k] >= hi + BUMP_RISE)
    before, after = _slope(s[enter : i + 1]), _slope(s[j - 1 : leave + 1])
    floor = PLATEAU_BAND / (4 * len(s))  # a flat plateau's drift, at least
    return min(before, after) >= LEAVE_RATE * max(drift, floor)


def _slope(ys: Sequence[float]) -> float:
    """Least-squares slope per evaluation."""
    n = len(ys)
    if n < 2:
        return 0.0
    mx, my = (n - 1) / 2, sum(ys) / n
    return sum((x - mx) * (y - my) for x, y in enumerate(ys)) / sum((x - mx) ** 2 for x in range(n))


def smooth(values: Sequence[float]) -> list[float]:
    """A running median, over SMOOTH evaluations or more where the curve jitters more:
    as many as bring the jitter left (measured against a SMOOTH-median) to JITTER, at
    most a tenth of the run (shorter windows at the ends)."""
    first = _median_filter(values, SMOOTH // 2)
    jitter = pstdev([v - f for v, f in zip(values, first)]) if len(values) > 1 else 0.0
    width = min(max(SMOOTH, math.ceil((jitter / JITTER) ** 2)), max(SMOOTH, len(values) // 10))
    return first if width <= SMOOTH else _median_filter(values, width // 2)


def _median_filter(values: Sequence[float], half: int) -> list[float]:
    return [median(values[max(0, i - half) : i + half + 1]) for i in range(len(values))]
