"""The training-dynamics labeller on synthetic curves, one per label, and its edges."""

import pytest
from factory import curve
from factory import run as make_run

from grokterm.bumps import train_bumps
from grokterm.labels import FIT, VAL_GEN, VAL_LOW, dynamics
from grokterm.records import MetricPoint


def test_grokking_train_fits_long_before_validation():
    c = curve(train=[0.1, 1, 1, 1, 1, 1, 1, 1], val=[0, 0, 0, 0.02, 0.05, 0.3, 0.97, 1.0],
              norm=[30, 45, 46, 44, 42, 38, 34, 33])  # fmt: skip
    info = dynamics(c)
    assert info.label == "grokking"
    assert (info.fit_step, info.rise_step, info.gen_step) == (100, 500, 600)
    assert info.norm_change == 34 - 42  # the norm falls: from before the rise to generalizing
    assert info.norm_peak == 46


def test_grokking_when_validation_starts_rising_at_the_fit_eval():
    # seen in the demo at 50% data: val 0.37 at the eval where train first fits,
    # then 1.0 five evals later
    c = curve(train=[0.01, 0.27, 1, 1, 1, 1, 1, 1], val=[0.02, 0.01, 0.37, 0.45, 0.5, 0.8, 0.96, 1])
    info = dynamics(c)
    assert info.rise_step == info.fit_step == 200 and info.gen_step == 600
    assert info.label == "grokking"


def test_generalizing_right_after_fitting_is_comprehension_not_grokking():
    info = dynamics(curve(train=[0.1, 0.5, 1, 1, 1], val=[0, 0.05, 0.5, 0.97, 1]))
    assert (info.fit_step, info.gen_step) == (200, 300)  # 1.5x the fit step: no real delay
    assert info.label == "comprehension"


def test_ungrokking_memorizes_and_never_generalizes():
    info = dynamics(curve(train=[0.1, 0.9, 1, 1, 1, 1], val=[0, 0.01, 0.02, 0.03, 0.05, 0.04]))
    assert info.label == "ungrokking" and info.gen_step is None and info.rise_step is None


def test_semi_grokking_ends_in_between():
    info = dynamics(curve(train=[0.2, 1, 1, 1, 1, 1], val=[0, 0, 0.05, 0.3, 0.45, 0.5]))
    assert info.label == "semi-grokking" and info.final_val == 0.5


def test_progression_generalizes_before_training_set_is_fit():
    c = curve(train=[0.1, 0.4, 0.5, 0.5, 0.7, 0.9, 0.95], val=[0, 0, 0, 0.01, 0.3, 0.8, 0.9],
              norm=[20, 25, 26, 26, 30, 33, 34])  # fmt: skip
    info = dynamics(c)
    assert info.label == "progression" and info.fit_step is None
    assert info.max_gap >= 0.4 and info.norm_change > 0  # the norm rises


def test_progression_that_ends_fitting_everything_is_still_progression():
    info = dynamics(curve(train=[0.1, 0.5, 0.5, 0.8, 1.0], val=[0, 0, 0.02, 0.6, 0.99]))
    assert info.label == "progression" and info.rise_step < info.fit_step


def test_progression_when_train_runs_ahead_after_validation_starts_rising():
    # fig 5, d=8 seed 1 at lr 2e-3 (every 400 steps): validation passes 0.1 while the
    # gap is 0.12, then train runs 0.29 ahead on the way to fitting everything
    train = [0.009, 0.086, 0.152, 0.452, 0.588, 0.654, 0.747, 0.871, 0.903, 0.95, 0.991]
    val = [0.008, 0.009, 0.032, 0.201, 0.299, 0.353, 0.499, 0.687, 0.724, 0.8, 0.866]
    info = dynamics(curve(train, val, every=400))
    assert info.label == "progression" and info.max_gap > 0.28


def test_comprehension_train_and_validation_rise_together():
    info = dynamics(curve(train=[0.0, 0.2, 0.6, 1.0], val=[0.0, 0.15, 0.55, 0.98]))
    assert info.label == "comprehension"


def test_not_learned_when_nothing_fits_or_generalizes():
    info = dynamics(curve(train=[0.01, 0.05, 0.2, 0.3], val=[0.0, 0.01, 0.01, 0.02]))
    assert info.label == "not learned"


@pytest.mark.parametrize(
    "final_val, label",
    [(VAL_GEN, "grokking"), (VAL_GEN - 1e-9, "semi-grokking"),
     (VAL_LOW, "semi-grokking"), (VAL_LOW - 1e-9, "ungrokking")],
)  # fmt: skip
def test_thresholds_are_inclusive_at_their_boundaries(final_val, label):
    c = curve(train=[0.1, FIT, 1, 1, 1], val=[0, 0, 0, 0, final_val])
    assert dynamics(c).label == label


def test_fit_threshold_boundary():
    assert dynamics(curve(train=[0.1, FIT - 1e-9], val=[0, 0])).fit_step is None
    assert dynamics(curve(train=[0.1, FIT], val=[0, 0])).fit_step == 100


def test_label_so_far_and_edge_cases():
    partial = curve(train=[0.1, 1, 1], val=[0, 0, 0.01])
    assert dynamics(partial).label == "ungrokking"  # so far
    assert dynamics([]) is None
    memorize = [MetricPoint(1, 0, {"train_acc": 0.1, "val_acc": None, "norm": 3.0})]
    assert dynamics(memorize).label is None  # no validation set: no dynamics label
    unsorted = list(reversed(curve(train=[0.1, 1, 1], val=[0, 0, 1])))
    assert dynamics(unsorted).gen_step == 200


# -- aggregates and derived curves ----------------------------------------------------

from grokterm.analysis import (  # noqa: E402
    aggregate,
    crossing,
    d_crit,
    d_mem,
    emergence_size,
    mean_ci,
    pool,
    zone,
)  # fmt: skip


def run(d, n, seed, val, train=1.0, label=None, n_params=None):
    grid = {"d": d, "n_train": n, "seed": seed} | ({"n_params": n_params} if n_params else {})
    return make_run(d, n, seed, val, label, train, grid=grid)


def test_mean_ci_matches_student_t():
    mean, low, high = mean_ci([1.0, 2.0, 3.0])
    assert mean == 2.0
    assert high - mean == pytest.approx(4.303 * 1.0 / 3**0.5)  # sd 1, t(2) = 4.303
    assert mean_ci([0.5]) == (0.5, 0.5, 0.5)
    _, low11, high11 = mean_ci([0.0, 1.0] * 5 + [0.5])  # 11 seeds, as the paper: sd 0.5
    assert high11 - low11 == pytest.approx(2 * 2.228 * 0.5 / 11**0.5)


def test_aggregate_groups_seeds_and_takes_majority_label():
    runs = [run(32, 3000, s, v, label=lab) for s, (v, lab) in
            enumerate([(0.2, "semi-grokking"), (0.4, "semi-grokking"), (0.05, "ungrokking")])]  # fmt: skip
    runs.append(run(64, 3000, 0, 1.0, label="grokking"))
    points = aggregate(runs)
    assert [(p.grid, p.n) for p in points] == [
        ({"d": 32, "n_train": 3000}, 3),
        ({"d": 64, "n_train": 3000}, 1),
    ]
    semi = points[0]
    assert semi.mean == pytest.approx(0.65 / 3) and semi.best == 0.4
    assert semi.label == "semi-grokking" and not semi.agree
    assert points[1].agree and points[1].low == points[1].high == 1.0


def test_pool_adds_seeds_of_the_same_settings_under_this_sweeps_grid():
    """fig 3 quick (seed 0) pooled with a calibration sweep of d = 32 with seeds 1 and
    2, whose grid holds only n_train: its runs join fig 3's (d, n_train) points."""

    def calib(n, seed, val, lr=2e-3):
        return make_run(32, n, seed, val, grid={"n_train": n, "seed": seed}, lr=lr)

    base = [make_run(d, 3000, 0, v, lr=2e-3) for d, v in ((32, 1.0), (64, 1.0))]
    others = [calib(3000, 1, 0.05), calib(3000, 2, 0.118), calib(3000, 0, 0.5),
              calib(3500, 1, 0.999), calib(3000, 3, 0.9, lr=1e-3)]  # fmt: skip
    pooled, counts = pool(base, others)
    assert (counts.added, counts.present, counts.other) == (3, 1, 1)
    assert pooled[:2] == base  # the sweep's own runs first, unchanged
    assert pooled[2].grid == {"d": 32, "n_train": 3000, "seed": 1}
    assert pooled[2].key == "d=32 n_train=3000 seed=1"
    points = {(p.grid["d"], p.grid["n_train"]): p for p in aggregate(pooled)}
    assert points[32, 3000].n == 3 and points[32, 3000].mean == pytest.approx(1.168 / 3)
    assert points[32, 3500].n == 1 and points[64, 3000].n == 1
    assert pool(base, []) == (base, counts.__class__(0, 0, 0))


def test_crossing_interpolates_between_the_points_around_it():
    assert crossing([2000, 2200, 2400], [0.1, 0.5, 1.0], 0.9) == pytest.approx(
        2200 + 0.4 / 0.5 * 200
    )
    assert crossing([2000, 2200], [0.95, 1.0], 0.9) == 2000
    assert crossing([2000, 2200], [0.1, 0.2], 0.9) is None
    assert crossing([2400, 2000, 2200], [1.0, 0.1, 0.5], 0.9) == pytest.approx(
        2360
    )  # unsorted input


def test_d_crit_per_size_and_memorization_capacity():
    runs = [run(64, n, s, v) for n, v in [(2000, 0.3), (2600, 0.8), (3000, 1.0)] for s in (0, 1)]
    runs += [run(32, n, 0, v) for n, v in [(2000, 0.0), (3000, 0.3), (4000, 0.95)]]
    crit = d_crit(aggregate(runs))
    assert crit[64] == pytest.approx(2600 + 0.1 / 0.2 * 400)
    assert crit[32] == pytest.approx(3000 + 0.6 / 0.65 * 1000)
    mem = d_mem([run(8, 12769, s, None, train=t) for s, t in enumerate([0.2, 0.22])])
    assert mem[0].mean == pytest.approx(0.21 * 12769)


def test_zone_map_from_the_two_curves():
    crit, mem = {32: 4000, 64: 3000}, {32: 6000, 64: 9000}
    assert zone(64, 3500, crit, mem) == "grokking"
    assert zone(64, 2500, crit, mem) == "semi-grokking"  # within SEMI_BAND below D_crit
    assert zone(64, 1500, crit, mem) == "ungrokking"
    assert zone(64, 9500, crit, mem) == "progression"  # above the memorization capacity
    assert zone(48, 3400, crit, mem) == "semi-grokking"  # D_crit(48) interpolates to 3500
    assert zone(48, 3400, {}, mem) is None
    # Outside the sizes a curve was measured at, no zone is guessed.
    assert zone(16, 3000, crit, {8: 700, 16: 2000}) is None
    assert zone(100, 3000, crit, mem) is None


def test_emergence_size_is_smallest_model_whose_best_seed_crosses():
    runs = [run(d, 3000, s, v, n_params=p) for d, p, vals in
            [(64, 1000, [0.0, 0.1]), (128, 4000, [0.2, 0.7]), (256, 16000, [0.9, 1.0])]
            for s, v in enumerate(vals)]  # fmt: skip
    assert emergence_size(aggregate(runs)) == 4000
    assert emergence_size(aggregate(runs), threshold=0.95) == 16000
    assert emergence_size(aggregate(runs[:2])) is None


def test_train_bumps_count_rises_after_plateaus():
    # a rise must last beyond one evaluation (smoothing takes a single point for jitter)
    assert train_bumps([0.1, 0.3, *[0.5] * 5, 0.6, *[0.7] * 5, 0.9, 0.9, 0.9]) == 2
    assert train_bumps([0.1, 0.5, 0.9, *[1.0] * 5]) == 0  # a smooth climb, no plateau
    assert train_bumps([0.4, 0.4, 0.4, 0.4, 0.42, 0.44]) == 0  # too small a rise
    # fig 2's d=8 run (lr 2e-3, seed 2, every 500 steps): a jittery plateau near 0.58
    # from step 1500 to 3500, then a second rise to 0.72
    fig2_d8 = [0.009, 0.085, 0.404, 0.604, 0.592, 0.572, 0.579, 0.56, 0.623, 0.669, 0.694,
               0.71, 0.717, 0.717, 0.718, 0.72, 0.734, 0.713, 0.73, 0.727, 0.719]  # fmt: skip
    assert train_bumps(fig2_d8) == 1
    # fig 5, seed 3 (every 200 steps to 12k): a plateau at 0.61-0.64 for ~2k steps, left
    # by a slow climb of ~0.01 per evaluation to 0.83, then flat
    fig5_seed3 = [0.01, 0.04, 0.14, 0.42, 0.55, 0.61, 0.64, 0.64, 0.64, 0.63, 0.62, 0.61,
                  0.61, 0.61, 0.61, 0.6, 0.62, 0.63, 0.62, 0.63, 0.65, 0.66, 0.67, 0.69,
                  0.7, 0.67, 0.69, 0.7, 0.67, 0.72, 0.73, 0.74, 0.75, 0.78, 0.8, 0.81,
                  0.82, 0.82, 0.82, 0.83, 0.82, 0.83]  # fmt: skip
    assert train_bumps(fig5_seed3 + [0.83] * 160) == 1  # flat from 12k to 40k
    assert train_bumps([0.1 + 0.015 * i for i in range(60)]) == 0  # a steady climb
