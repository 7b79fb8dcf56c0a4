"""The paper's claims, as written in presets, evaluated on a stored sweep. No torch.

Each `[[claims]]` table has a `kind`, a `text` and the kind's keys. A verdict is
reproduced only beyond the evidence's spread, else uncertain (grokterm.claim_checks):

| kind | keys | holds when |
| --- | --- | --- |
| label | where, label | a majority of the matching runs carry `label`, each beyond its margins |
| final | where, op, value, [metric] | the mean final metric (val_acc) there satisfies `op value`: its 95% interval (an accuracy's widened by 0.02) wholly |
| range | where, x, between, op, value | every point with x in [lo, hi] satisfies it, as `final` |
| double_descent | where, x, [drop] | along x the mean falls by >= drop and rises again by >= drop, the dip below both peaks' intervals |
| monotone | where, x, [tolerance] | along x the mean never falls by more than tolerance, and ends above its start beyond the intervals |
| d_crit | d, op, value | the critical dataset size D_crit(d) satisfies `op value` over its whole interval |
| d_crit_trend | [tolerance] | D_crit falls with d beyond its intervals, never rising (by more than tolerance) |
| capacity_trend | | memorization capacity grows with d, each step beyond the intervals |
| capacity_ci | value | every 95% interval of the capacity is within +-value of its mean (relative) |
| norm_trend | where, direction | most matching runs' norm falls ("fall") or rises ("rise") through the transition |
| bumps | where, min_runs | at least min_runs matching runs show bumps in train accuracy |
| emergence_ratio | op, value | emergence size with memorization data over the single-task size |
| emergence_compare | smaller, larger | the emergence size where `smaller` holds is below that where `larger` holds |
| circuit | where, [label], formed | in most matching runs (carrying `label`) the circuit formed before validation passed 0.5 (formed = "before") or never (formed = "never") |
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields

from grokterm import analysis, claim_checks, wording
from grokterm.claim_checks import NO_DATA, NOT_REPRODUCED, OPS, REPRODUCED, UNCERTAIN
from grokterm.records import Run
from grokterm.series import unknown as unknown_series

__all__ = ["NO_DATA", "NOT_REPRODUCED", "REPRODUCED", "UNCERTAIN"]


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
    formed: str | None = None


class ClaimProblem(ValueError):
    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}")
        self.key, self.message = key, message


@dataclass
class ClaimResult:
    text: str
    status: str  # REPRODUCED, NOT_REPRODUCED, UNCERTAIN or NO_DATA
    detail: str  # the numbers behind the verdict
    evidence: str = ""  # how many seeds, how many agree
    margin: str = ""  # how far from deciding the other way


def check_claims(claims: Sequence[Claim], runs: Sequence[Run]) -> list[ClaimResult]:
    """Evaluate every claim on the finished runs."""
    done = [analysis.with_size(r) for r in runs if r.status == "done"]
    return [check(claim, done) for claim in claims]


def check(claim: Claim, runs: Sequence[Run]) -> ClaimResult:
    try:
        status, detail, evidence, margin = CHECKS[claim.kind](claim, runs)
    except claim_checks.NoData as err:
        status, detail, evidence, margin = NO_DATA, str(err) or "no finished runs match", "", ""
    return ClaimResult(claim.text or claim.kind, status, detail, evidence, margin)


# The keys each kind cannot do without (the table above; `where` is always optional).
REQUIRED = {
    "label": ("label",), "final": ("op", "value"), "range": ("x", "between", "op", "value"),
    "double_descent": ("x",), "monotone": ("x",), "d_crit": ("d", "op", "value"),
    "d_crit_trend": (), "capacity_trend": (), "capacity_ci": ("value",),
    "norm_trend": ("direction",), "bumps": ("min_runs",), "emergence_ratio": ("op", "value"),
    "emergence_compare": ("smaller", "larger"), "circuit": ("formed",),
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
    if table.get("formed", "before") not in ("before", "never"):
        raise ClaimProblem("formed", f"expected before or never, got {table['formed']!r}")
    if problem := unknown_series(table.get("metric", "val_acc")):
        raise ClaimProblem("metric", problem)
    return Claim(**table)


def _emergence(runs, where: dict) -> tuple[float | None, int]:
    """(emergence size or None, the largest size tried) of the runs matching where."""
    found = claim_checks.points(runs, where)
    return analysis.emergence_size(found), max(p.grid["n_params"] for p in found)


def _emergence_ratio(claim, runs):
    single, _ = _emergence(runs, {"n_mem": 0})
    n_mems = sorted({r.config.n_mem for r in runs} - {0})
    if single is None or not n_mems:
        raise claim_checks.NoData(
            "needs single-task runs (n_mem = 0) that emerge and multitask runs"
        )
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
    return (
        status,
        f"single-task size {wording.count(single)} parameters; " + "; ".join(parts),
        _best_seed(runs),
        "",
    )


def _times(ratio: float) -> str:
    return f"{ratio:.1f}x" if ratio < 10 else f"{ratio:.0f}x"


def _emergence_compare(claim, runs):
    small, _ = _emergence(runs, claim.smaller)
    large, largest = _emergence(runs, claim.larger)
    if small is None and large is None:
        raise claim_checks.NoData(
            f"neither {wording.where(claim.smaller)} nor {wording.where(claim.larger)} "
            "emerged at the sizes run"
        )
    smaller, larger = wording.where(claim.smaller), wording.where(claim.larger)
    if small is None:
        return NOT_REPRODUCED, f"{smaller}: never emerged", _best_seed(runs), ""
    if large is None:
        return (REPRODUCED, f"{smaller}: emerged at {wording.count(small)} parameters; {larger}: "
                f"not up to {wording.count(largest)}", _best_seed(runs), "")  # fmt: skip
    status = REPRODUCED if small < large else NOT_REPRODUCED
    return (status, f"emergence at {wording.count(small)} parameters ({smaller}) vs "
            f"{wording.count(large)} ({larger})", _best_seed(runs), "")  # fmt: skip


def _best_seed(runs: Sequence[Run]) -> str:
    seeds = len({r.config.seed for r in runs})
    return f"best of {seeds} seed{'s' * (seeds > 1)} per size ({analysis.EMERGE_VAL} validation)"


CHECKS = {
    "label": claim_checks.label, "final": claim_checks.final, "range": claim_checks.range_,
    "double_descent": claim_checks.double_descent, "monotone": claim_checks.monotone,
    "d_crit": claim_checks.d_crit, "d_crit_trend": claim_checks.d_crit_trend,
    "capacity_trend": claim_checks.capacity_trend, "capacity_ci": claim_checks.capacity_ci,
    "norm_trend": claim_checks.norm_trend, "bumps": claim_checks.bumps,
    "emergence_ratio": _emergence_ratio, "emergence_compare": _emergence_compare,
    "circuit": claim_checks.circuit,
}  # fmt: skip
