"""The training-dynamics labeller on synthetic curves, one per label, and its edges."""

import pytest

from grokterm.analysis import FIT, VAL_GEN, VAL_LOW, dynamics


def curve(train, val, norm=None, every=100):
    norm = norm or [40.0] * len(train)
    return [{"step": i * every, "train_acc": t, "val_acc": v, "norm": n}
            for i, (t, v, n) in enumerate(zip(train, val, norm))]  # fmt: skip


def test_grokking_train_fits_long_before_validation():
    c = curve(train=[0.1, 1, 1, 1, 1, 1, 1, 1], val=[0, 0, 0, 0.02, 0.05, 0.3, 0.97, 1.0],
              norm=[30, 45, 46, 44, 42, 38, 34, 33])  # fmt: skip
    info = dynamics(c)
    assert info.label == "grokking"
    assert (info.fit_step, info.rise_step, info.gen_step) == (100, 500, 600)
    assert info.norm_change == 34 - 38  # the norm falls through the transition
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
    memorize = [{"step": 0, "train_acc": 0.1, "val_acc": None, "norm": 3.0}]
    assert dynamics(memorize).label is None  # no validation set: no dynamics label
    unsorted = list(reversed(curve(train=[0.1, 1, 1], val=[0, 0, 1])))
    assert dynamics(unsorted).gen_step == 200
