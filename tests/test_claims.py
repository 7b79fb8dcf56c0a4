"""Claims of a preset, evaluated on stored runs: reproduced, not reproduced, or not enough data."""

from dataclasses import replace

from factory import run as make_run

from grokterm.claims import NO_DATA, NOT_REPRODUCED, REPRODUCED, check_claims, parse_claim


def check(claims, runs):
    return check_claims([parse_claim(c) for c in claims], runs)


def run(d, n, seed, val, label="grokking", train=1.0, **extra):
    return make_run(d, n, seed, val, label, train, **extra)


def statuses(claims, runs):
    return [r.status for r in check(claims, runs)]


def test_label_claims():
    runs = [run(8, 3000, 0, 0.6, "progression"), run(32, 2600, 0, 0.01, "ungrokking")]
    claims = [{"kind": "label", "where": {"d": 8, "n_train": 3000}, "label": "progression", "text": "a"},
              {"kind": "label", "where": {"d": 32, "n_train": 2600}, "label": "grokking", "text": "b"},
              {"kind": "label", "where": {"d": 64, "n_train": 3000}, "label": "grokking", "text": "c"}]  # fmt: skip
    results = check(claims, runs)
    assert [r.status for r in results] == [REPRODUCED, NOT_REPRODUCED, NO_DATA]
    assert "label ungrokking (ungrokking x1)" in results[1].detail


def test_double_descent_range_and_monotone():
    vals = {8: 0.3, 16: 0.5, 24: 0.02, 32: 0.0, 40: 0.05, 48: 0.4, 64: 0.9}
    runs = [run(d, 2600, 0, v) for d, v in vals.items()]
    runs += [run(d, 4000, 0, 0.2 + d / 100) for d in vals]
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


def test_d_crit_claims():
    runs = [run(64, n, 0, v) for n, v in [(2000, 0.3), (2800, 0.7), (3000, 0.97)]]
    runs += [run(32, n, 0, v) for n, v in [(2000, 0.0), (3000, 0.1), (4000, 0.95)]]
    claims = [{"kind": "d_crit", "d": 64, "op": "<=", "value": 3000},
              {"kind": "d_crit", "d": 32, "op": ">=", "value": 3500},
              {"kind": "d_crit_trend"}, {"kind": "d_crit", "d": 48, "op": "<=", "value": 1}]  # fmt: skip
    assert statuses(claims, runs) == [REPRODUCED, REPRODUCED, REPRODUCED, NO_DATA]
    # Reached already at the smallest n measured: shown as a bound.
    runs += [run(48, n, 0, v) for n, v in [(2500, 0.99), (3000, 1.0)]]
    (result,) = check([{"kind": "d_crit", "d": 48, "op": "<=", "value": 3000}], runs)
    assert result.status == REPRODUCED and "D_crit(d=48) = <= 2500" in result.detail


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
        "{'split_ffn': True} emerged at 819712 params, {'split_ffn': False} not up to 819712"
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
