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

A deciding value within its margin of a line (LINES), a grokking delay the evaluation
interval does not resolve, and a validation still rising or falling by TREND at the end
(over the last quarter of the run) each give the label decided on the other side as
`alt`: the run is uncertain between the two, and `note` says why. Claims count such a
run as uncertain."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from statistics import median

from grokterm.bumps import train_bumps
from grokterm.records import Dynamics, MetricPoint

FIT, FIT_HELD = 0.99, 0.90
VAL_LOW, VAL_GEN, VAL_MARGIN = 0.10, 0.95, 0.02
MEM_GAP = 0.20
GROK_DELAY = 2.0
VAL_HALF = 0.5  # halfway: the circuit's claims ask whether it formed before this
# The generalization circuit has formed once the restricted loss (the loss of the logits
# kept only along the key frequencies, grokterm.experiment.circuits) falls below this
# fraction of its first measured value (about ln p, chance: 0.41 at p = 59, 0.47 at 113).
CIRCUIT_FRACTION = 0.1
# Softmax collapse (Prieto et al. 2025): the run is marked from the first evaluation at
# which at least this share of its training examples have a float32 loss of exactly 0.
COLLAPSE = 0.5
TREND = 0.02  # validation gained (lost) this much over the run's last quarter: still rising
TREND_EVALS = 8  # fewer evaluations than this: no trend is read
# Each line a label is decided by: the Deciding field, the line, its margin, its name.
LINES = {
    "fit": ("best_train", FIT, 0.005, "the best train accuracy"),
    "held": ("final_train", FIT_HELD, 0.03, "final train accuracy"),
    "low": ("final_val", VAL_LOW, VAL_MARGIN, "validation"),
    "gen": ("final_val", VAL_GEN, VAL_MARGIN, "validation"),
    "gap": ("gap", MEM_GAP, 0.05, "the train-ahead gap"),
    "delay": ("delay", GROK_DELAY, 0.2, "the grokking delay (generalization over fit step)"),
}
DECIDED_BY = {  # label -> the lines that could turn it into another
    "not learned": ("fit", "low"), "progression": ("gap", "low", "fit"),
    "comprehension": ("gap", "gen", "delay", "fit"), "collapsed": ("held",),
    "grokking": ("gen", "delay"), "ungrokking": ("low", "held"),
    "semi-grokking": ("low", "gen", "held"),
}  # fmt: skip
LABELS = tuple(DECIDED_BY)


@dataclass(frozen=True)
class Crossing:
    """Where a series first reaches a threshold: at evaluation `step`, after the one at
    `before` (None at the first evaluation); `at` interpolated linearly between them."""

    step: int
    before: int | None
    at: float


@dataclass(frozen=True)
class Deciding:
    """What decides a label; alternatives nudge one of these across its line."""

    best_train: float
    final_train: float
    final_val: float
    gap: float
    rose_first: bool  # validation passed VAL_LOW before the fit (or the best train)
    delay: float | None  # generalization step over fit step; None: not generalized
    end_delay: float  # the same, were it to generalize at the last evaluation


def dynamics(curve: Sequence[MetricPoint]) -> Dynamics | None:
    """Label a run from its metric points, finished or so far. None for an empty curve."""
    rows = [p for p in sorted(curve, key=lambda p: p.step) if p.get("train_acc") is not None]
    if not rows:
        return None
    has_val = rows[-1].get("val_acc") is not None
    fit = crossing(rows, "train_acc", FIT)
    rise = crossing(rows, "val_acc", VAL_LOW) if has_val else None
    gen = crossing(rows, "val_acc", VAL_GEN) if has_val else None
    half = crossing(rows, "val_acc", VAL_HALF) if has_val else None
    before_fit = [r for r in rows if fit is None or r.step < fit.step] or rows[:1]
    seen = [r for r in before_fit if r.get("val_acc") is not None] if has_val else before_fit
    max_gap = max((r.get("train_acc") - (r.get("val_acc") or 0.0) for r in seen), default=0.0)
    norms = [r.get("norm") for r in rows if r.get("norm") is not None]
    final = rows[-1]
    info = Dynamics(
        label=None, fit_step=fit and fit.step, rise_step=rise and rise.step,
        gen_step=gen and gen.step, final_train=final.get("train_acc"),
        final_val=final.get("val_acc"), max_gap=max_gap, norm_start=rows[0].get("norm"),
        norm_peak=max(norms, default=None), norm_final=final.get("norm"),
        norm_change=_norm_change(rows, rise, gen), last_step=final.step,
        bumps=train_bumps([r.get("train_acc") for r in rows]),
        half_step=half and half.step,
        circuit_step=circuit(rows),
        collapse_step=collapsed(rows),
    )  # fmt: skip
    if has_val:
        _label(info, rows, fit, rise, gen)
    return info


def _label(info: Dynamics, rows, fit: Crossing | None, rise, gen: Crossing | None) -> None:
    best = max(rows, key=lambda r: r.get("train_acc"))
    fit_at = fit.at if fit else float(best.step)  # the best train stands in for a fit
    q = Deciding(
        best_train=best.get("train_acc"), final_train=info.final_train,
        final_val=info.final_val, gap=info.max_gap,
        rose_first=rise is not None and rise.step < (fit.step if fit else best.step),
        delay=gen.at / max(fit_at, 1.0) if gen and fit else None,
        end_delay=info.last_step / max(fit_at, 1.0),
    )  # fmt: skip
    info.label = decide(q)
    for nudged, why in _nudges(q, fit, gen):
        if (other := decide(nudged)) != info.label:
            info.alt, info.note = other, why
            break
    info.trend, gain = trend(rows)
    if info.trend == "still rising" and info.final_val >= VAL_GEN:
        info.trend = None  # generalized: nothing left to rise to
    if info.trend and info.alt is None:  # where it is heading, one more quarter on
        projected = replace(q, final_val=min(1.0, max(0.0, q.final_val + gain)))
        if (other := decide(projected)) != info.label:
            info.alt = other
            info.note = f"validation {info.trend} ({gain:+.3f} over the last quarter)"


def decide(q: Deciding) -> str:
    """The label of the rules in the module's docstring, on exact lines."""
    fit = q.best_train >= FIT
    if not fit or (q.rose_first and q.final_train >= FIT_HELD and q.final_val >= VAL_LOW):
        if q.final_val < VAL_LOW:
            return "not learned"
        return "progression" if q.gap >= MEM_GAP else "comprehension"
    if q.final_train < FIT_HELD:
        return "collapsed"
    if q.final_val >= VAL_GEN:  # not yet generalized (a nudge): it would be at the end
        late = (q.delay if q.delay is not None else q.end_delay) >= GROK_DELAY
        return "grokking" if late else "comprehension"
    return "ungrokking" if q.final_val < VAL_LOW else "semi-grokking"


def _nudges(q: Deciding, fit: Crossing | None, gen: Crossing | None):
    """The deciding values within their margin of a line, each moved across it."""
    for field, line, margin, name in LINES.values():
        value = getattr(q, field)
        if value is not None and abs(value - line) < margin:
            across = line - 1e-9 if value >= line else line
            yield (
                replace(q, **{field: across}),
                (f"{name} {value:.3f} is within {margin} of the {line} line ({value - line:+.3f})"),
            )
    if q.delay is not None and not _resolved(fit, gen):
        across = GROK_DELAY - 1e-9 if q.delay >= GROK_DELAY else GROK_DELAY
        yield (
            replace(q, delay=across),
            (
                f"the evaluations do not resolve the grokking delay: fit after step "
                f"{fit.before or 0} by {fit.step}, validation {VAL_GEN} after {gen.before or 0} "
                f"by {gen.step} (grokking needs >= {GROK_DELAY:g}x the fit step)"
            ),
        )


def _resolved(fit: Crossing, gen: Crossing) -> bool:
    """Whether every fit and generalization step the evaluations allow (fit in
    (fit.before, fit.step], generalization in (gen.before, gen.step]) give one verdict."""
    fit_lo, gen_lo = fit.before or 0, gen.before or 0
    late_always = gen_lo >= GROK_DELAY * max(fit.step, 1)
    late_never = gen.step <= GROK_DELAY * fit_lo  # the fit came after fit_lo
    return late_always or late_never


def margin(info: Dynamics) -> tuple[float, str] | None:
    """How far the run is from the nearest line that decides its label, in units of that
    line's margin (1.0: at the margin's edge), and in words."""
    values = {"best_train": None, "final_train": info.final_train, "final_val": info.final_val,
              "gap": info.max_gap, "delay": None}  # fmt: skip
    near = []
    for key in DECIDED_BY.get(info.label or "", ()):
        field, line, m, name = LINES[key]
        if (value := values[field]) is not None:
            near.append((abs(value - line) / m, f"{name} {value:.3f} is {value - line:+.3f} "
                                                f"from the {line} line (margin {m})"))  # fmt: skip
    return min(near) if near else None


def why(info: Dynamics) -> str:
    """The numbers that decide a run's label, in words (and what makes it uncertain)."""
    fit = f"fit by step {info.fit_step}" if info.fit_step is not None else "never fit"
    val, train = info.final_val or 0.0, info.final_train
    fit_first = info.fit_step is not None and (
        info.rise_step is None or info.rise_step >= info.fit_step
    )
    text = {
        "not learned": f"{fit}; validation ends at {val:.3f} (< {VAL_LOW})",
        "progression": f"{fit}; train ran {info.max_gap:.2f} ahead (>= {MEM_GAP}) before "
        f"validation rose; it ends at {val:.3f}",
        "comprehension": f"{fit}; validation >= {VAL_GEN} by step {info.gen_step}, within "
        f"{GROK_DELAY:g}x the fit step" if fit_first else f"{fit}; train and validation rose "
        f"together (gap {info.max_gap:.2f}); validation ends at {val:.3f}",
        "collapsed": f"{fit}, but train ends at {train:.3f} (< {FIT_HELD})",
        "grokking": f"{fit}; validation >= {VAL_GEN} by step {info.gen_step}, ends {val:.3f}",
        "ungrokking": f"{fit}; validation ends at {val:.3f} (< {VAL_LOW})",
        "semi-grokking": f"{fit}; validation ends at {val:.3f}, between {VAL_LOW} and {VAL_GEN}",
    }.get(info.label or "", "no validation set")  # fmt: skip
    doubt = f"; uncertain: {info.note}" if info.alt else ""
    return text + doubt + (f"; {info.trend}" if info.trend and not info.alt else "")


def trend(rows: Sequence[MetricPoint]) -> tuple[str | None, float]:
    """("still rising" or "still falling" or None, validation's gain over the last
    quarter of the run): the median of the last 3 evaluations against that of the 3
    around three quarters of the way."""
    vals = [(r.step, r.get("val_acc")) for r in rows if r.get("val_acc") is not None]
    if len(vals) < TREND_EVALS:
        return None, 0.0
    quarter = vals[-1][0] * 0.75
    mid = min(range(len(vals)), key=lambda i: abs(vals[i][0] - quarter))
    mid = max(1, min(mid, len(vals) - 5))  # the two windows of 3 do not overlap
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
    start = norms[rise.before if rise.before is not None else rise.step]
    end = norms[gen.step if gen is not None else rows[-1].step]
    return None if start is None or end is None else end - start


def circuit(rows: Sequence[MetricPoint]) -> int | None:
    """The first evaluated step at which the restricted loss is below CIRCUIT_FRACTION of
    its first measured value; None where it never is, or nothing was measured."""
    measured = [r for r in rows if r.get("restricted_loss") is not None]
    if not measured:
        return None
    line = CIRCUIT_FRACTION * measured[0].get("restricted_loss")
    return next((r.step for r in measured if r.get("restricted_loss") < line), None)


def collapsed(rows: Sequence[MetricPoint]) -> int | None:
    """The first evaluated step at which softmax_collapse reaches COLLAPSE; None where it
    never does, or it was not measured."""
    return next((r.step for r in rows if (r.get("softmax_collapse") or 0.0) >= COLLAPSE), None)


def crossing(rows: Sequence[MetricPoint], key: str, threshold: float) -> Crossing | None:
    before = None
    for r in rows:
        if (value := r.get(key)) is None:
            continue
        if value >= threshold:
            if before is None:
                return Crossing(r.step, None, float(r.step))
            v0 = before.get(key)
            at = before.step + (threshold - v0) * (r.step - before.step) / (value - v0)
            return Crossing(r.step, before.step, at)
        before = r
    return None
