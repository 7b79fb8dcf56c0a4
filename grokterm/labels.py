"""A run's training-dynamics label from its curve, and the numbers behind it. No torch.

The rules, stated once (docs/reproduction.md repeats them). Thresholds:
train accuracy FIT = 0.99 fits the training set; validation below VAL_LOW = 0.10 is
negligible, at or above VAL_GEN = 0.95 generalized; train running MEM_GAP = 0.20 ahead
of validation before fitting means part of the set was memorized first.

1. never fit: **not learned** if validation ends below VAL_LOW (one evaluation above
   it does not count); else **progression** if train ran MEM_GAP ahead at some point,
   **comprehension** if the two rose together;
2. fit, but train ends below FIT_HELD = 0.90 (the fit re-checked at the end): **collapsed**;
3. validation rose past VAL_LOW at an evaluation before the fit and ends above it:
   progression or comprehension, by the gap, as in 1;
4. fit first: validation ends >= VAL_GEN: **grokking** if it got there at >= GROK_DELAY
   times the fit step (the crossings interpolated between evaluations), else
   **comprehension**; below VAL_LOW: **ungrokking**; in between: **semi-grokking**.

A value within a margin of a threshold (VAL_MARGIN of validation, GAP_MARGIN of the
gap, HELD_MARGIN of train), a grokking delay the evaluation interval does not resolve,
and a validation still rising or falling by TREND at the end (over the last quarter of
the run) each give the label decided on the other side as `alt`: the run is uncertain
between the two, and `note` says why. Claims count such a run as uncertain."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from statistics import median

from grokterm.records import Dynamics, MetricPoint

FIT = 0.99
FIT_HELD, HELD_MARGIN = 0.90, 0.03
VAL_LOW, VAL_GEN, VAL_MARGIN = 0.10, 0.95, 0.02
MEM_GAP, GAP_MARGIN = 0.20, 0.05
GROK_DELAY = 2.0
TREND = 0.02  # validation gained (lost) this much over the run's last quarter: still rising
TREND_EVALS = 8  # fewer evaluations than this: no trend is read
# Bumps (fig 5): a plateau of train accuracy, at least PLATEAU_EVALS evaluations and
# PLATEAU_SPAN of the run long, inside a band PLATEAU_BAND wide once smoothed over SMOOTH
# evaluations (full-batch accuracy jitters), entered by a rise and left by a rise of
# BUMP_RISE, each at least LEAVE_RATE times as fast as the plateau's own drift.
PLATEAU_EVALS, PLATEAU_SPAN, PLATEAU_BAND = 5, 0.05, 0.05
BUMP_RISE, LEAVE_RATE, SMOOTH = 0.05, 2.0, 5

LABELS = ("progression", "ungrokking", "grokking", "semi-grokking", "comprehension",
          "not learned", "collapsed")  # fmt: skip


@dataclass(frozen=True)
class Crossing:
    """Where a series first reaches a threshold: at evaluation `step`, after the one at
    `before` (None at the first evaluation); `at` interpolated linearly between them."""

    step: int
    before: int | None
    at: float


@dataclass(frozen=True)
class Deciding:
    """What decides a label; alternatives nudge one of these across its threshold."""

    fit: bool
    final_train: float
    final_val: float
    gap: float
    rose_first: bool
    late: bool


def dynamics(curve: Sequence[MetricPoint]) -> Dynamics | None:
    """Label a run from its metric points, finished or so far. None for an empty curve."""
    rows = [p for p in sorted(curve, key=lambda p: p.step) if p.get("train_acc") is not None]
    if not rows:
        return None
    has_val = rows[-1].get("val_acc") is not None
    fit = crossing(rows, "train_acc", FIT)
    rise = crossing(rows, "val_acc", VAL_LOW) if has_val else None
    gen = crossing(rows, "val_acc", VAL_GEN) if has_val else None
    before_fit = [r for r in rows if fit is None or r.step < fit.step] or rows[:1]
    max_gap = max(r.get("train_acc") - (r.get("val_acc") or 0.0) for r in before_fit)
    final = rows[-1]
    info = Dynamics(
        label=None, fit_step=fit and fit.step, rise_step=rise and rise.step,
        gen_step=gen and gen.step, final_train=final.get("train_acc"),
        final_val=final.get("val_acc"), max_gap=max_gap, norm_start=rows[0].get("norm"),
        norm_peak=max(r.get("norm") for r in rows), norm_final=final.get("norm"),
        norm_change=_norm_change(rows, rise, gen), last_step=final.step,
        bumps=train_bumps([r.get("train_acc") for r in rows]),
    )  # fmt: skip
    if has_val:
        _label(info, fit, gen, rows)
    return info


def _label(info: Dynamics, fit: Crossing | None, gen: Crossing | None, rows) -> None:
    q = Deciding(
        fit=fit is not None, final_train=info.final_train, final_val=info.final_val,
        gap=info.max_gap, rose_first=fit is not None and info.rise_step is not None
        and info.rise_step < fit.step, late=gen is not None and fit is not None
        and gen.at >= GROK_DELAY * max(fit.at, 1.0),
    )  # fmt: skip
    info.label = decide(q)
    # generalizing at the end of the run would be late if the end is >= GROK_DELAY x fit
    late_now = fit is not None and info.last_step >= GROK_DELAY * max(fit.at, 1.0)
    for nudged, why in _nudges(q, fit, gen, late_now):
        if (other := decide(nudged)) != info.label:
            info.alt, info.note = other, why
            break
    info.trend, gain = trend(rows)
    if info.trend == "still rising" and info.final_val >= VAL_GEN:
        info.trend = None  # generalized: nothing left to rise to
    if info.trend and info.alt is None:
        # where it is heading, one more quarter on (generalizing then would be late)
        projected = replace(
            q, final_val=min(1.0, max(0.0, q.final_val + gain)), late=q.late or late_now
        )
        if (other := decide(projected)) != info.label:
            info.alt = other
            info.note = f"validation {info.trend} ({gain:+.3f} over the last quarter)"


def why(info: Dynamics) -> str:
    """The numbers that decide a run's label, in words (and what makes it uncertain)."""
    fit = f"fit by step {info.fit_step}" if info.fit_step is not None else "never fit"
    val, train = info.final_val or 0.0, info.final_train
    text = {
        "not learned": f"{fit}; validation ends at {val:.3f} (< {VAL_LOW})",
        "progression": f"{fit}; train ran {info.max_gap:.2f} ahead (>= {MEM_GAP}) before "
        f"validation rose; it ends at {val:.3f}",
        "comprehension": f"{fit}; validation rose with train (gap {info.max_gap:.2f}); "
        f"generalized by step {info.gen_step}"
        if info.gen_step
        else f"{fit}; train and "
        f"validation rose together (gap {info.max_gap:.2f}); validation ends at {val:.3f}",
        "collapsed": f"{fit}, but train ends at {train:.3f} (< {FIT_HELD})",
        "grokking": f"{fit}; validation >= {VAL_GEN} by step {info.gen_step}, ends {val:.3f}",
        "ungrokking": f"{fit}; validation ends at {val:.3f} (< {VAL_LOW})",
        "semi-grokking": f"{fit}; validation ends at {val:.3f}, between {VAL_LOW} and {VAL_GEN}",
    }.get(info.label or "", "no validation set")
    return (
        text
        + (f"; uncertain: {info.note}" if info.alt else "")
        + (f"; {info.trend}" if info.trend and not info.alt else "")
    )


def decide(q: Deciding) -> str:
    """The label of the rules in the module's docstring, on exact thresholds."""
    if not q.fit or (q.rose_first and q.final_train >= FIT_HELD and q.final_val >= VAL_LOW):
        if q.final_val < VAL_LOW:
            return "not learned"
        return "progression" if q.gap >= MEM_GAP else "comprehension"
    if q.final_train < FIT_HELD:
        return "collapsed"
    if q.final_val >= VAL_GEN:
        return "grokking" if q.late else "comprehension"
    return "ungrokking" if q.final_val < VAL_LOW else "semi-grokking"


def _nudges(q: Deciding, fit: Crossing | None, gen: Crossing | None, late_now: bool):
    """The deciding values within a margin of a threshold, each moved across it."""
    for value, line, margin, key, name in (
        (q.final_val, VAL_LOW, VAL_MARGIN, "final_val", "validation"),
        (q.final_val, VAL_GEN, VAL_MARGIN, "final_val", "validation"),
        (q.gap, MEM_GAP, GAP_MARGIN, "gap", "the train-ahead gap"),
        (q.final_train, FIT_HELD, HELD_MARGIN, "final_train", "final train accuracy"),
    ):
        if abs(value - line) < margin:
            across = line - 1e-9 if value >= line else line
            late = q.late or (late_now and across >= VAL_GEN)
            yield (
                replace(q, **{key: across}, late=late),
                (f"{name} {value:.3f} is within {margin} of the {line} line ({value - line:+.3f})"),
            )
    if fit is not None and gen is not None and not _resolved(fit, gen):
        yield (
            replace(q, late=not q.late),
            (
                f"the evaluations do not resolve the grokking delay: fit after step "
                f"{fit.before or 0} by {fit.step}, validation {VAL_GEN} after {gen.before or 0} "
                f"by {gen.step} (grokking needs >= {GROK_DELAY:g}x the fit step)"
            ),
        )


def _resolved(fit: Crossing, gen: Crossing) -> bool:
    """Whether every fit and generalization step the evaluations allow give one verdict."""
    fit_lo, gen_lo = fit.before or 0, gen.before or 0
    late_always = gen_lo >= GROK_DELAY * max(fit.step, 1)
    late_never = gen.step < GROK_DELAY * max(fit_lo, 1)
    return late_always or late_never


def trend(rows: Sequence[MetricPoint]) -> tuple[str | None, float]:
    """("still rising" or "still falling" or None, validation's gain over the last
    quarter of the run): the median of the last 3 evaluations against that of the 3
    around three quarters of the way."""
    vals = [(r.step, r.get("val_acc")) for r in rows if r.get("val_acc") is not None]
    if len(vals) < TREND_EVALS:
        return None, 0.0
    quarter = vals[-1][0] * 0.75
    mid = min(range(len(vals)), key=lambda i: abs(vals[i][0] - quarter))
    mid = max(1, min(mid, len(vals) - 4))
    gain = median(v for _, v in vals[-3:]) - median(v for _, v in vals[mid - 1 : mid + 2])
    if abs(gain) < TREND:
        return None, gain
    return ("still rising" if gain > 0 else "still falling"), gain


def _norm_change(rows, rise: Crossing | None, gen: Crossing | None) -> float | None:
    """The norm through the transition: at generalization (or the end) minus at the
    evaluation before validation rose (so a transition inside one interval still shows)."""
    if rise is None:
        return None
    norms = {r.step: r.get("norm") for r in rows}
    start = rise.before if rise.before is not None else rise.step
    end = gen.step if gen is not None else rows[-1].step
    return norms[end] - norms[start]


def crossing(rows: Sequence[MetricPoint], key: str, threshold: float) -> Crossing | None:
    before = None
    for r in rows:
        value = r.get(key) or 0.0
        if value >= threshold:
            if before is None:
                return Crossing(r.step, None, float(r.step))
            v0 = before.get(key) or 0.0
            at = before.step + (threshold - v0) * (r.step - before.step) / (value - v0)
            return Crossing(r.step, before.step, at)
        before = r
    return None


def train_bumps(train: Sequence[float]) -> int:
    """Plateaus of train accuracy below FIT, entered and left by a rise (module docstring)."""
    s = _smooth(train)
    n = len(s)
    min_len = max(PLATEAU_EVALS, round(PLATEAU_SPAN * n))
    bumps, i = 0, 0
    while i < n:
        j, lo, hi = i + 1, s[i], s[i]  # grow [i, j) while it stays in the band
        while j < n and max(hi, s[j]) - min(lo, s[j]) < PLATEAU_BAND:
            lo, hi, j = min(lo, s[j]), max(hi, s[j]), j + 1
        if j - i >= min_len and _left(s, i, j):
            bumps += 1
            i = j
        else:
            i += 1
    return bumps


def _left(s: Sequence[float], i: int, j: int) -> bool:
    """Whether s[i:j] is a plateau: below FIT, entered by a rise of BUMP_RISE and left by
    one, each faster than its own drift (a climb that merely speeds up or slows down
    has no stretch slower than both sides)."""
    top, bottom = max(s[i:j]), min(s[i:j])
    entered = next((k for k in range(i, -1, -1) if s[k] <= bottom - BUMP_RISE), None)
    if top >= FIT or entered is None:
        return False
    drift = max(s[j - 1] - s[i], 0.0) / (j - i)
    if (s[i] - s[entered]) / (i - entered) < LEAVE_RATE * drift:
        return False
    for k in range(j, len(s)):
        if s[k] >= top + BUMP_RISE:
            return (s[k] - s[j - 1]) / (k - j + 1) >= LEAVE_RATE * drift
    return False


def _smooth(values: Sequence[float]) -> list[float]:
    """A running median over SMOOTH evaluations (shorter at the ends)."""
    half = SMOOTH // 2
    return [median(values[max(0, i - half) : i + half + 1]) for i in range(len(values))]
