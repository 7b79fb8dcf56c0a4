"""Claims of a preset, evaluated on stored runs: reproduced, not reproduced, uncertain
(the evidence allows both), or not enough data."""

from dataclasses import replace

from factory import dynamics_info
from factory import run as make_run

from grokterm.claims import (
    NO_DATA,
    NOT_REPRODUCED,
    REPRODUCED,
    UNCERTAIN,
    check_claims,
    parse_claim,
)


def check(claims, runs):
    return check_claims([parse_claim(c) for c in claims], runs)


def run(d, n, seed, val, label="grokking", train=1.0, **extra):
    return make_run(d, n, seed, val, label, train, **extra)


def seeded(d, n, val, seeds=3, **extra):
    """Runs of one point over seeds, a little apart (+-0.01), as accuracies."""
    return [run(d, n, s, min(1.0, max(0.0, val + 0.01 * (s - 1))), **extra) for s in range(seeds)]


def statuses(claims, runs):
    return [r.status for r in check(claims, runs)]


def test_label_claims():
    runs = [run(8, 3000, 0, 0.6, "progression"), run(32, 2600, 0, 0.01, "ungrokking")]
    claims = [{"kind": "label", "where": {"d": 8, "n_train": 3000}, "label": "progression", "text": "a"},
              {"kind": "label", "where": {"d": 32, "n_train": 2600}, "label": "grokking", "text": "b"},
              {"kind": "label", "where": {"d": 64, "n_train": 3000}, "label": "grokking", "text": "c"}]  # fmt: skip
    results = check(claims, runs)
    assert [r.status for r in results] == [REPRODUCED, NOT_REPRODUCED, NO_DATA]
    assert "ungrokking x1; final val 0.010" in results[1].detail
    assert results[1].evidence == "0 of 1 seeds grokking"


def test_double_descent_range_and_monotone():
    vals = {8: 0.3, 16: 0.5, 24: 0.02, 32: 0.0, 40: 0.05, 48: 0.4, 64: 0.9}
    runs = [r for d, v in vals.items() for r in seeded(d, 2600, v)]
    runs += [r for d in vals for r in seeded(d, 4000, 0.2 + d / 100)]
    claims = [
        {"kind": "double_descent", "where": {"n_train": 2600}, "x": "d"},
        {
            "kind": "range",
            "where": {"n_train": 2600},
            "x": "d",
            "between": [24, 40],
            "op": "<=",
            "value": 0.1,
        },
        {"kind": "monotone", "where": {"n_train": 4000}, "x": "d"},
        {"kind": "double_descent", "where": {"n_train": 4000}, "x": "d"},
        {"kind": "monotone", "where": {"n_train": 2600}, "x": "d"},
    ]
    assert statuses(claims, runs) == [
        REPRODUCED,
        REPRODUCED,
        REPRODUCED,
        NOT_REPRODUCED,
        NOT_REPRODUCED,
    ]
    # one seed per point: the same means, but no spread to test a trend against
    single = [r for r in runs if r.config.seed == 1]
    assert statuses(claims[:1], single) == [UNCERTAIN]
    assert "no spread" in check(claims[:1], single)[0].evidence


def test_d_crit_claims():
    runs = [r for n, v in [(2000, 0.3), (2800, 0.7), (3000, 0.97)] for r in seeded(64, n, v)]
    runs += [r for n, v in [(2000, 0.0), (3000, 0.1), (3500, 0.3), (4000, 0.95)]
             for r in seeded(32, n, v)]  # fmt: skip
    claims = [{"kind": "d_crit", "d": 64, "op": "<=", "value": 3000},
              {"kind": "d_crit", "d": 32, "op": ">=", "value": 3500},
              {"kind": "d_crit_trend"}, {"kind": "d_crit", "d": 48, "op": "<=", "value": 1}]  # fmt: skip
    assert statuses(claims, runs) == [REPRODUCED, REPRODUCED, REPRODUCED, NO_DATA]
    # Reached already at the smallest n measured: D_crit is at most that n.
    runs += [r for n, v in [(2500, 0.99), (3000, 1.0)] for r in seeded(48, n, v)]
    (result,) = check([{"kind": "d_crit", "d": 48, "op": "<=", "value": 3000}], runs)
    assert result.status == REPRODUCED and result.margin == "D_crit in (-inf, 2500]"


def test_capacity_claims():
    runs = [run(d, 12769, s, None, train=t, task="memorize") for d, ts in
            [(8, [0.100, 0.101, 0.102]), (16, [0.20, 0.201, 0.202]), (32, [0.40, 0.401, 0.402])] for s, t in enumerate(ts)]  # fmt: skip
    claims = [{"kind": "capacity_trend"}, {"kind": "capacity_ci", "value": 0.2},
              {"kind": "capacity_ci", "value": 0.001}]  # fmt: skip
    assert statuses(claims, runs) == [REPRODUCED, REPRODUCED, NOT_REPRODUCED]


def test_norm_trend_and_bumps():
    runs = [run(8, 3000, s, 0.5, "progression", norm_change=c, bumps=b) for s, (c, b) in
            enumerate([(3.0, 1), (2.0, 0), (-1.0, 2)])]  # fmt: skip
    runs += [run(64, 3000, s, 1.0, norm_change=-8.0) for s in range(2)]
    claims = [{"kind": "norm_trend", "where": {"d": 8}, "direction": "rise"},
              {"kind": "norm_trend", "where": {"d": 64}, "direction": "fall"},
              {"kind": "norm_trend", "where": {"d": 64}, "direction": "rise"},
              {"kind": "bumps", "where": {"d": 8}, "min_runs": 2},
              {"kind": "bumps", "where": {"d": 8}, "min_runs": 3}]  # fmt: skip
    assert statuses(claims, runs) == [
        REPRODUCED,
        REPRODUCED,
        NOT_REPRODUCED,
        REPRODUCED,
        NOT_REPRODUCED,
    ]


def test_emergence_claims():
    single = [run(d, 3000, 0, 1.0 if d >= 64 else 0.0, task="multitask") for d in (32, 64)]
    multi = [
        run(d, 3000, 0, 1.0 if d >= 512 else 0.0, task="multitask", n_mem=3000)
        for d in (64, 256, 512)
    ]
    split = [run(d, 3000, 0, 1.0 if d >= 256 else 0.0, task="multitask", n_mem=3000, split_ffn=True)
             for d in (64, 256, 512)]  # fmt: skip
    dense = [replace(r, config=replace(r.config, split_ffn=False)) for r in multi]
    runs = dense + split  # fig 10 trains no single-task runs: split_ffn = false is the dense model
    claims = [{"kind": "emergence_ratio", "op": ">=", "value": 10},
              {"kind": "emergence_compare", "smaller": {"split_ffn": True}, "larger": {"split_ffn": False}}]  # fmt: skip
    results = check(claims, single + multi)
    assert results[0].status == REPRODUCED and "n_mem 3000:" in results[0].detail
    assert statuses(claims[1:], runs) == [REPRODUCED]


def test_emergence_compare_when_the_larger_never_emerges():
    """Fig 10 quick: the split model emerges at the top rung, the dense one at none;
    the numbers say up to which size the dense model was tried."""
    runs = [run(d, 1400, 0, v, task="multitask", p=59, n_mem=1400, split_ffn=split)
            for d, split, v in [(128, True, 0.36), (256, True, 0.83), (128, False, 0.05),
                                (256, False, 0.44)]]  # fmt: skip
    claim = {"kind": "emergence_compare", "smaller": {"split_ffn": True},
             "larger": {"split_ffn": False}}  # fmt: skip
    [result] = check([claim], runs)
    assert result.status == REPRODUCED
    assert result.detail == (
        "split_ffn = True: emerged at 820k parameters; split_ffn = False: not up to 820k"
    )


def test_emergence_ratio_when_the_multitask_never_emerges():
    """Not emerged up to the largest size run bounds the ratio below: enough to hold
    a '>=' claim when the bound is past it, not enough to judge it when it is short."""
    single = [run(d, 3000, 0, 1.0 if d >= 64 else 0.0, task="multitask") for d in (32, 64)]
    multi = [run(d, 3000, 0, 0.0, task="multitask", n_mem=3000) for d in (64, 128)]
    claim = {"kind": "emergence_ratio", "op": ">=", "value": 100}
    [result] = check([claim], single + multi)
    assert result.status == NO_DATA and "n_mem 3000: not emerged, > " in result.detail
    assert statuses([claim | {"value": 2}], single + multi) == [REPRODUCED]
    assert statuses([claim | {"op": "<=", "value": 2}], single + multi) == [NOT_REPRODUCED]


def test_emergence_compare_when_neither_emerges():
    runs = [run(d, 3000, 0, 0.0, task="multitask", n_mem=3000, split_ffn=s)
            for d in (32, 64) for s in (False, True)]  # fmt: skip
    claim = {
        "kind": "emergence_compare",
        "smaller": {"split_ffn": True},
        "larger": {"split_ffn": False},
    }
    assert statuses([claim], runs) == [NO_DATA]


def test_unfinished_runs_are_not_judged():
    runs = [run(8, 3000, 0, 0.6, "progression", status="running")]
    claims = [{"kind": "label", "where": {"d": 8}, "label": "progression"}]
    assert statuses(claims, runs) == [NO_DATA]


# -- how sure a verdict is: the edges a knife-edge rule used to decide ----------------


def test_d_crit_that_grows_a_little_is_not_falling():
    # 3000 -> 3100 -> 3200: within the old tolerance of 100 pairs, but it rises
    ns = [2900, 3000, 3100, 3200, 3300]
    runs = [r for d, crit in [(32, 3000), (48, 3100), (64, 3200)] for n in ns
            for r in seeded(d, n, 0.98 if n >= crit else 0.3)]  # fmt: skip
    [result] = check([{"kind": "d_crit_trend"}], runs)
    assert result.status == NOT_REPRODUCED
    assert "32: (2900, 3000], 48: (3000, 3100], 64: (3100, 3200]" in result.margin


def test_sizes_that_never_reach_d_crit_count():
    ns = [2500, 3000, 3500]
    at = lambda d, crit: [r for n in ns for r in seeded(d, n, 0.98 if n >= crit else 0.2)]  # noqa: E731
    falling = at(8, 10**9) + at(32, 3000) + at(64, 2500)  # d = 8 never reaches it: > 3500
    [result] = check([{"kind": "d_crit_trend"}], falling)
    assert result.status == REPRODUCED and "8: never" in result.detail
    rising = at(32, 3000) + at(64, 10**9)  # the larger model never reaches it: it rose
    assert statuses([{"kind": "d_crit_trend"}], rising) == [NOT_REPRODUCED]


def test_a_label_tie_is_a_tie_not_run_order():
    runs = [run(32, 3000, s, v, label) for s, (v, label) in
            enumerate([(0.5, "semi-grokking"), (0.01, "ungrokking"), (0.6, "semi-grokking"),
                       (0.02, "ungrokking")])]  # fmt: skip
    for label in ("semi-grokking", "ungrokking"):
        claim = {"kind": "label", "where": {"d": 32}, "label": label}
        [result] = check([claim], runs)
        assert result.status == UNCERTAIN and result.evidence == f"2 of 4 seeds {label} (a tie)"


def test_a_run_near_a_line_makes_a_label_claim_uncertain():
    info = dynamics_info("semi-grokking")
    near = replace(
        info, alt="ungrokking", note="validation 0.107 is within 0.02 of the 0.1 line (+0.007)"
    )
    runs = [replace(run(32, 3000, 2, 0.107, "semi-grokking"), info=near)]
    [result] = check([{"kind": "label", "where": {"d": 32}, "label": "semi-grokking"}], runs)
    assert result.status == UNCERTAIN and result.margin == near.note
    assert "semi-grokking or ungrokking? x1" in result.detail


def test_double_descent_within_the_seeds_spread_is_uncertain():
    # the means dip by 0.2 at d = 24, but the seeds scatter by +-0.3 around them
    vals = {8: 0.5, 16: 0.6, 24: 0.4, 32: 0.6}
    runs = [run(d, 2600, s, v + off) for d, v in vals.items()
            for s, off in enumerate((-0.3, 0.0, 0.3))]  # fmt: skip
    claim = {"kind": "double_descent", "where": {"n_train": 2600}, "x": "d"}
    [result] = check([claim], runs)
    assert result.status == UNCERTAIN and "within the seeds' spread" in result.margin
    tight = [
        run(d, 2600, s, v + off) for d, v in vals.items() for s, off in enumerate((-0.01, 0, 0.01))
    ]
    assert statuses([claim], tight) == [REPRODUCED]


def test_an_unchanged_norm_is_no_vote_for_a_fall():
    runs = [run(64, 3000, s, 1.0, norm_change=c) for s, c in enumerate([0.0, 0.0, -3.0])]
    [result] = check([{"kind": "norm_trend", "where": {"d": 64}, "direction": "fall"}], runs)
    assert result.status == UNCERTAIN and result.evidence == "1 of 3 runs fall, 0 the other way"


def test_an_accuracy_within_the_run_to_run_margin_of_its_bound_is_uncertain():
    # fig 7 quick at d = 24: 0.089 against "about 0" (<= 0.1); the same run varies by
    # ~0.01 across machines and cohorts (0.107, 0.110, 0.118 for fig 2's (32, 3000))
    claim = {"kind": "range", "where": {}, "x": "d", "between": [24, 24], "op": "<=", "value": 0.1}
    [near] = check([claim], [run(24, 3000, 2, 0.089)])
    assert near.status == UNCERTAIN and "+-0.02 for run-to-run noise" in near.margin
    assert statuses([claim], [run(24, 3000, 2, 0.05)]) == [REPRODUCED]
    assert statuses([claim], [run(24, 3000, 2, 0.2)]) == [NOT_REPRODUCED]
    final = {"kind": "final", "where": {"d": 24}, "op": "<=", "value": 0.1}
    assert statuses([final], [run(24, 3000, 2, 0.089)]) == [UNCERTAIN]


def test_a_d_crit_step_up_within_the_grid_bracket_is_not_a_rise():
    # fig 3 quick in shape: D_crit 2949, 2950, <= 2500 at d = 32, 48, 64 (one seed): the
    # first two share the bracket (2500, 3000]; the fall to d = 64 is beyond it, but with
    # one seed there is no spread to test it against
    ns = [2500, 3000, 3500]
    vals = {32: [0.01, 0.98, 1.0], 48: [0.02, 0.98, 1.0], 64: [0.99, 1.0, 1.0]}
    runs = [run(d, n, 0, v) for d, vs in vals.items() for n, v in zip(ns, vs)]
    [result] = check([{"kind": "d_crit_trend"}], runs)
    assert result.status == UNCERTAIN and "no spread" in result.evidence
    seeded_runs = [r for d, vs in vals.items() for n, v in zip(ns, vs) for r in seeded(d, n, v)]
    assert statuses([{"kind": "d_crit_trend"}], seeded_runs) == [REPRODUCED]


def _measured(label, circuit_step, half_step, seed=0, eval_every=100):
    r = run(64, 3000, seed, 1.0 if label == "grokking" else 0.01, label, eval_every=eval_every)
    info = replace(r.info, circuit_step=circuit_step, half_step=half_step, last_step=40000)
    return replace(r, info=info, final=r.final | {"restricted_loss": 0.01})


def test_circuit_claims_read_when_the_circuit_formed():
    before = {"kind": "circuit", "label": "grokking", "formed": "before"}
    never = {"kind": "circuit", "label": "ungrokking", "formed": "never"}
    grokked = [_measured("grokking", 1200, 2000, s) for s in range(3)]
    ungrokked = [_measured("ungrokking", None, None, s) for s in range(3)]
    assert statuses([before, never], grokked + ungrokked) == [REPRODUCED, REPRODUCED]
    result = check([before], grokked)[0]
    assert result.detail.startswith("circuit 1200, val 0.5 at 2000")
    assert result.evidence == "3 of 3 runs agree, 0 against"
    # formed after validation passed halfway, or in an ungrokking run: the claim fails
    late = [_measured("grokking", 3000, 2000, s) for s in range(3)]
    formed = [_measured("ungrokking", 5000, None, s) for s in range(3)]
    assert statuses([before, never], late + formed) == [NOT_REPRODUCED, NOT_REPRODUCED]
    # within one measurement of each other: no vote either way
    close = [_measured("grokking", 1900, 2000, s) for s in range(3)]
    [result] = check([before], close)
    assert result.status == UNCERTAIN and "within one measurement interval" in result.margin
    # runs never measured (an old sweep, or multitask): not enough data
    unmeasured = [replace(r, final={"val_acc": 1.0}) for r in grokked]
    assert statuses([before], unmeasured) == [NO_DATA]


def test_a_circuit_claim_names_a_bad_formed():
    import pytest

    from grokterm.claims import ClaimProblem

    with pytest.raises(ClaimProblem, match="formed: expected before or never, got 'soon'"):
        parse_claim({"kind": "circuit", "formed": "soon"})
    with pytest.raises(ClaimProblem, match="formed: a circuit claim needs it"):
        parse_claim({"kind": "circuit"})
