"""The cohort engine trains every run exactly as the plain reference trains it alone."""

import io
import math

import pytest
import torch

from grokterm.config import RunConfig
from grokterm.experiment.reference import train_reference
from grokterm.experiment.trainer import Cohort, MetricRow

P, STEPS = 23, 200
TOL = 1e-9  # float64 on both sides; observed differences are ~1e-14


def cohort_configs(**extra) -> list[RunConfig]:
    """Four runs with different seeds and training-set sizes."""
    base = dict(p=P, d=16, steps=STEPS, eval_every=25) | extra
    return [
        RunConfig(**base, n_train=n, seed=s) for n, s in [(180, 0), (260, 1), (220, 7), (300, 3)]
    ]


# Trainings are deterministic (conftest sets torch as a worker does), so a cohort or a
# reference run trained once is shared by every test here and in test_engines that
# trains it again with the same settings; the tests only read the rows.
_COHORTS: dict = {}
_REFERENCES: dict = {}


def train_cohort(configs, **kwargs) -> dict[tuple[int, int], MetricRow]:
    key = (tuple(configs), tuple(sorted(kwargs.items())))
    if key not in _COHORTS:
        rows: dict[tuple[int, int], MetricRow] = {}
        cohort = Cohort(configs, **kwargs)
        cohort.train(lambda batch: rows.update({(r.run, r.step): r for r in batch}))
        _COHORTS[key] = rows
    return _COHORTS[key]


def as_dict(row: MetricRow) -> dict[str, float]:
    return {k: v for k, v in row.values.items() if v is not None}


def reference_curve(cfg: RunConfig) -> dict[int, dict[str, float]]:
    if cfg not in _REFERENCES:
        curve: dict[int, dict[str, float]] = {}
        train_reference(cfg, lambda step, m: curve.update({step: m}), dtype=torch.float64)
        _REFERENCES[cfg] = curve
    return _REFERENCES[cfg]


def assert_matches_reference(configs, **kwargs):
    rows = train_cohort(configs, dtype=torch.float64, **kwargs)
    for i, cfg in enumerate(configs):
        ref = reference_curve(cfg)
        assert sorted(ref) == sorted(step for run, step in rows if run == i)
        assert sorted(ref) == list(range(0, STEPS + 1, 25))
        for step, expected in ref.items():
            got = as_dict(rows[(i, step)])
            assert expected.keys() <= got.keys()  # the engine adds the circuit measures
            for key, value in expected.items():
                assert got[key] == pytest.approx(value, abs=TOL), (i, step, key)
    # training did something: every run's train loss fell
    for i in range(len(configs)):
        assert rows[(i, STEPS)].values["train_loss"] < rows[(i, 0)].values["train_loss"] - 0.1


@pytest.mark.parametrize("fast", [True, False], ids=["last-position", "full-sequence"])
def test_one_layer_matches_reference(fast):
    assert_matches_reference(cohort_configs(), fast=fast)


def test_two_layers_match_reference():
    assert_matches_reference(cohort_configs(n_layers=2))


def test_multitask_with_split_ffn_matches_reference():
    configs = cohort_configs(task="multitask", split_ffn=True, n_mem=150)
    assert_matches_reference(configs)
    rows = train_cohort(configs[:1], dtype=torch.float64)
    assert {"train_add_acc", "train_mem_acc"} <= set(rows[(0, STEPS)].values)


def test_multitask_dense_matches_reference():
    assert_matches_reference(cohort_configs(task="multitask", n_mem=100))


def test_square_and_per_run_optimizer_settings_match_reference():
    configs = cohort_configs(task="square")
    configs[1] = RunConfig(**(configs[1].to_dict() | dict(lr=3e-3, weight_decay=0.5)))
    configs[2] = RunConfig(**(configs[2].to_dict() | dict(beta2=0.99, warmup=0)))
    assert_matches_reference(configs)


def test_memorization_matches_reference():
    configs = [RunConfig(task="memorize", p=P, d=16, n_train=P * P, seed=s, steps=STEPS,
                         eval_every=25) for s in range(4)]  # fmt: skip
    assert_matches_reference(configs)


def test_run_curves_do_not_depend_on_the_cohort():
    """Exact in float64. In float32, what sweeps use, the cohort's shapes change the
    rounding (~1e-8), and training can amplify it later (~2e-4 by step 200 here)."""
    configs = cohort_configs()
    other = [RunConfig(**(c.to_dict() | dict(seed=c.seed + 40, n_train=400))) for c in configs]
    for dtype, early, late in [(torch.float64, TOL, TOL), (torch.float32, 1e-6, 1e-2)]:
        alone = train_cohort([configs[2]], dtype=dtype)
        mixed = train_cohort([other[0], configs[2], other[1]], dtype=dtype)
        for step in range(0, STEPS + 1, 25):
            a, b = as_dict(alone[(0, step)]), as_dict(mixed[(1, step)])
            tol = early if step <= 100 else late
            for key in a:
                assert b[key] == pytest.approx(a[key], abs=tol), (dtype, step, key)


def test_initial_weights_depend_only_on_seed():
    configs = cohort_configs()
    a = Cohort(configs).flat[2]
    b = Cohort([configs[2], configs[0]]).flat[0]
    assert torch.equal(a, b)
    assert not torch.equal(a, Cohort([configs[1]]).flat[0])


def test_stop_and_resume_is_identical_to_uninterrupted():
    configs = cohort_configs()
    straight = train_cohort(configs)

    rows: dict = {}
    first = Cohort(configs)
    stop_at = {"step": 113}
    done = first.train(lambda b: rows.update({(r.run, r.step): r for r in b}),
                       should_stop=lambda: first.step >= stop_at["step"])  # fmt: skip
    assert not done and first.step == 113
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    second = Cohort(configs)
    second.load_state_dict(torch.load(buffer))
    assert second.train(lambda b: rows.update({(r.run, r.step): r for r in b}))
    assert rows.keys() == straight.keys()
    for key, row in straight.items():
        assert rows[key] == row  # bit-for-bit


def test_resume_refuses_a_checkpoint_of_another_cohort():
    configs = cohort_configs()
    state = Cohort(configs[:2]).state_dict()
    with pytest.raises(ValueError, match="different cohort"):
        Cohort(configs[1:3]).load_state_dict(state)


def test_diverged_run_is_reported_and_the_rest_go_on():
    configs = cohort_configs()
    configs[1] = RunConfig(**(configs[1].to_dict() | dict(lr=1e30)))
    rows = train_cohort(configs, dtype=torch.float64)
    bad = sorted(step for run, step in rows if run == 1)
    assert rows[(1, bad[-1])].diverged and bad[-1] < STEPS
    assert not math.isfinite(rows[(1, bad[-1])].values["train_loss"])
    healthy = train_cohort([configs[0]], dtype=torch.float64)
    for step in range(0, STEPS + 1, 25):
        assert rows[(0, step)].values["train_loss"] == pytest.approx(
            healthy[(0, step)].values["train_loss"], abs=TOL
        )
        assert not rows[(0, step)].diverged


@pytest.mark.parametrize("n_layers", [1, 3])
def test_memory_estimate_covers_what_backward_keeps(n_layers):
    # The GPU planner sizes cohorts by planning.run_bytes; it must not undercount the
    # activations autograd keeps for the backward pass of the model a worker trains
    # (the 1-layer last-position path, the full-sequence one for deeper models).
    from grokterm.planning import run_bytes
    from grokterm.presets import RunSpec

    cfg = RunConfig(task="multitask", p=P, d=32, n_layers=n_layers, n_train=150, n_mem=150)
    cohort = Cohort([cfg, RunConfig(**{**cfg.to_dict(), "seed": 1})])
    kept = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        kept[(t.data_ptr(), t.shape)] = t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        cohort.loss_per_run()
    estimate = 2 * run_bytes(RunSpec("x", {}, cfg))
    # saved tensors are a floor: the backward's gradients of activations come on top
    # (on the last-position path a step's peak memory was 0.7-1.1x the estimate, measured)
    assert sum(kept.values()) <= estimate < (3 if n_layers > 1 else 4) * sum(kept.values())


@pytest.mark.parametrize("task", ["sub", "mul", "div"])
def test_new_tasks_match_reference(task):
    assert_matches_reference(cohort_configs(task=task))


def test_layernorm_two_layers_match_reference():
    assert_matches_reference(cohort_configs(n_layers=2, n_heads=1, layernorm=True))


@pytest.mark.parametrize("fast", [True, False], ids=["last-position", "full-sequence"])
def test_layernorm_one_layer_matches_reference(fast):
    assert_matches_reference(cohort_configs(layernorm=True), fast=fast)


def test_minibatches_match_reference():
    """Each run draws its own minibatches (64 of 180..300 pairs: short last batches,
    epochs of different lengths inside one cohort)."""
    assert_matches_reference(cohort_configs(batch_size=64))


def test_modelwise_setting_matches_reference():
    """Davies et al.'s setting in small: division, a training fraction, 2 layers of one
    head with LayerNorm, minibatches."""
    base = dict(p=P, d=16, steps=STEPS, eval_every=25, task="div", n_layers=2, n_heads=1,
                layernorm=True, batch_size=100)  # fmt: skip
    configs = [RunConfig(**base, train_fraction=f, seed=s) for f, s in [(0.5, 0), (0.4, 3)]]
    assert [c.train_size for c in configs] == [253, 202]  # of 23 * 22 pairs
    assert_matches_reference(configs)
