"""Reading curves: the training-dynamics label of a run and the numbers behind it.
No torch. Thresholds are named here, in one place (DESIGN.md section 3)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

FIT = 0.99  # train accuracy that counts as having fit (memorized) the training set
VAL_LOW = 0.10  # validation below this is "negligible"
VAL_GEN = 0.95  # validation at or above this is "generalized"
MEM_GAP = 0.20  # a train-minus-validation gap this large means memorization came first
GROK_DELAY = 2.0  # grokking: validation generalizes at >= this multiple of the fit step

LABELS = ("progression", "ungrokking", "grokking", "semi-grokking", "comprehension", "not learned")


@dataclass
class Dynamics:
    label: str | None  # one of LABELS; None where there is no validation set
    fit_step: int | None  # first eval with train accuracy >= FIT
    rise_step: int | None  # first eval with validation accuracy >= VAL_LOW
    gen_step: int | None  # first eval with validation accuracy >= VAL_GEN
    final_train: float
    final_val: float | None
    max_gap: float  # largest train - validation gap before validation rose
    norm_start: float
    norm_peak: float
    norm_final: float
    norm_change: float | None  # through the transition: at gen (or end) minus at rise
    last_step: int

    def to_dict(self) -> dict:
        return asdict(self)


def dynamics(curve: Sequence[dict]) -> Dynamics | None:
    """Label a run from its metric rows (dicts with step, train_acc, val_acc, norm),
    finished or so far. None for an empty curve."""
    rows = [r for r in sorted(curve, key=lambda r: r["step"]) if r.get("train_acc") is not None]
    if not rows:
        return None
    has_val = rows[-1].get("val_acc") is not None
    fit = _first(rows, "train_acc", FIT)
    rise = _first(rows, "val_acc", VAL_LOW) if has_val else None
    gen = _first(rows, "val_acc", VAL_GEN) if has_val else None
    before_rise = rows if rise is None else [r for r in rows if r["step"] <= rise]
    max_gap = max(r["train_acc"] - (r.get("val_acc") or 0.0) for r in before_rise)
    norms = {r["step"]: r["norm"] for r in rows}
    final = rows[-1]
    change = None
    if rise is not None:
        change = norms[gen if gen is not None else final["step"]] - norms[rise]
    info = Dynamics(
        label=None, fit_step=fit, rise_step=rise, gen_step=gen,
        final_train=final["train_acc"], final_val=final.get("val_acc"), max_gap=max_gap,
        norm_start=rows[0]["norm"], norm_peak=max(norms.values()), norm_final=final["norm"],
        norm_change=change, last_step=final["step"],
    )  # fmt: skip
    if has_val:
        info.label = _label(info)
    return info


def _label(info: Dynamics) -> str:
    rose = info.rise_step is not None
    if info.fit_step is None:
        # generalizing while the training set is not yet fit, or neither
        return "progression" if rose else "not learned"
    if rose and info.rise_step < info.fit_step:
        # validation rose before the training set was fit: either after a partial
        # memorization (progression) or together with training accuracy (comprehension)
        return "progression" if info.max_gap >= MEM_GAP else "comprehension"
    if info.final_val >= VAL_GEN:
        # generalized after fitting; "much later" is what makes it grokking
        late = info.gen_step is not None and info.gen_step >= GROK_DELAY * max(info.fit_step, 1)
        return "grokking" if late else "comprehension"
    if info.final_val < VAL_LOW:
        return "ungrokking"
    return "semi-grokking"


def _first(rows: Sequence[dict], key: str, threshold: float) -> int | None:
    return next((r["step"] for r in rows if (r.get(key) or 0.0) >= threshold), None)
