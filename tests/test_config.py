"""Bad arguments raise errors that say what was wrong and what is allowed."""

import pytest

from grokterm.config import ConfigError, RunConfig
from grokterm.experiment.trainer import Cohort


@pytest.mark.parametrize(
    "kwargs, key, expected",
    [
        (dict(d=30), "d", "expected a multiple of n_heads (4), got 30"),
        (dict(n_train=20000), "n_train", "expected at most 12769 (all pairs for p=113), got 20000"),
        (
            dict(task="mult"),
            "task",
            "expected one of add, square, sub, mul, div, memorize, multitask, got 'mult'",
        ),
        (dict(task="div", p=91), "p", "division needs a prime p (every b != 0 invertible), got 91"),
        (dict(train_fraction=1.0), "train_fraction", "expected a number in [0, 1), got 1.0"),
        (
            dict(train_fraction=0.5, n_train=100),
            "train_fraction",
            "give n_train or train_fraction, not both",
        ),
        (
            dict(train_fraction=0.5, task="multitask"),
            "train_fraction",
            "only single-task runs take it",
        ),
        (dict(train_fraction=1e-6), "train_fraction", "expected at least one training pair, got 0"),
        (dict(batch_size=-1), "batch_size", "expected a non-negative integer, got -1"),
        (dict(n_train=0), "n_train", "expected a positive integer, got 0"),
        (dict(steps=-5), "steps", "expected a positive integer, got -5"),
        (dict(n_mem=10), "n_mem", "only the multitask task takes n_mem"),
        (dict(split_ffn=True), "split_ffn", "only the multitask task can split the FFN"),
        (dict(beta2=1.0), "beta2", "expected a number in [0, 1), got 1.0"),
        (dict(n_train=12769), "n_train", "so that some pairs are left to validate on"),
    ],
)
def test_bad_config_names_key_and_allowed_values(kwargs, key, expected):
    with pytest.raises(ConfigError) as err:
        RunConfig(**kwargs).validate()
    assert err.value.key == key
    assert expected in str(err.value)
    assert str(err.value).startswith(f"{key}: ")


def test_a_training_fraction_counts_the_tasks_pairs():
    """Division leaves out b = 0; the share is rounded as Davies et al.'s split rounds it."""
    assert RunConfig(task="div", p=97, train_fraction=0.5).train_size == 4656  # of 97 * 96
    assert RunConfig(p=113, train_fraction=0.3).train_size == 3831  # round(0.3 * 12769)
    assert RunConfig(p=113, n_train=3000).train_size == 3000


def test_layernorm_and_minibatches_separate_cohorts_and_count_parameters():
    plain, normed = RunConfig(d=16), RunConfig(d=16, layernorm=True)
    assert normed.cohort_key() != plain.cohort_key() != RunConfig(d=16, batch_size=64).cohort_key()
    assert normed.n_params - plain.n_params == 4 * 16  # two gains and two biases a layer
    assert RunConfig(d=16, batch_size=512, n_train=300).batch == 300  # never past the set
    assert plain.identity() == {"d": 16, "version": 1}  # stored sweeps keep their identity


def test_memorize_may_use_all_pairs():
    assert RunConfig(task="memorize", p=7, n_train=49).validate()


def test_cohort_refuses_bad_config_and_mixed_architectures():
    with pytest.raises(ConfigError, match="d: expected a multiple"):
        Cohort([RunConfig(p=7, d=6, n_train=10)])
    with pytest.raises(ValueError, match="share a cohort key"):
        Cohort([RunConfig(p=7, d=8, n_train=10), RunConfig(p=7, d=16, n_train=10)])


def test_unknown_key_from_dict():
    with pytest.raises(ConfigError, match="hidden: unknown key"):
        RunConfig.from_dict({"hidden": 3})
    cfg = RunConfig(d=64, seed=3)
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
