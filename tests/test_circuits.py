"""The circuit's Fourier measures: as constructed on hand-built weights, equal to the
slow way one run at a time, and per run independent of the cohort."""

import math

import pytest
import torch
import torch.nn.functional as F

from grokterm.config import RunConfig
from grokterm.experiment import circuits
from grokterm.experiment.model import unpack
from grokterm.experiment.tasks import pair_grid
from grokterm.experiment.trainer import Cohort

P = 23


def test_an_embedding_on_two_frequencies_has_those_keys_and_a_high_gini():
    x = torch.arange(P, dtype=torch.float64)
    embed = torch.zeros(1, P + 1, 8, dtype=torch.float64)
    embed[0, :P, 0] = 3 * torch.cos(2 * math.pi * 4 * x / P)
    embed[0, :P, 1] = 2 * torch.sin(2 * math.pi * 7 * x / P)
    embed[0, P] = 5.0  # the `=` token is not part of Z_p
    norms = circuits.frequency_norms(embed, P)
    assert norms.shape == (1, (P - 1) // 2)
    assert norms[0, 3] == pytest.approx(3 * math.sqrt(P / 2))  # frequency 4
    assert norms[0, 6] == pytest.approx(2 * math.sqrt(P / 2))  # frequency 7
    assert norms[0].sum() == pytest.approx(norms[0, 3] + norms[0, 6])
    assert circuits.key_frequencies(norms, 2).tolist() == [[4, 7]]
    # two of eleven frequencies hold it all: 2 sum(rank * x) / (n sum x) - (n + 1) / n
    n, (a, b) = 11, (3.0, 2.0)
    expected = (2 * ((n - 1) * b + n * a) / (n * (a + b))) - (n + 1) / n
    assert circuits.gini(norms)[0] == pytest.approx(expected)
    assert circuits.gini(torch.ones(1, 11))[0] == pytest.approx(0.0, abs=1e-12)


def _slow_losses(logits: torch.Tensor, keys: list[int], labels, train) -> tuple[float, float]:
    """One run, Nanda et al.'s way: 2D Fourier directions built from the 1D basis,
    cos(w(x+y)) = (cos x cos y - sin x sin y) / sqrt 2, one frequency at a time."""
    basis = circuits.fourier_basis(P)
    kept = torch.zeros_like(logits)
    for w in keys:
        c, s = basis[2 * w - 1], basis[2 * w]
        cos_xpy = (torch.outer(c, c) - torch.outer(s, s)).flatten() / math.sqrt(2)
        sin_xpy = (torch.outer(s, c) + torch.outer(c, s)).flatten() / math.sqrt(2)
        for direction in (cos_xpy, sin_xpy):
            kept += direction[:, None] * (direction[None, :] @ logits)
    restricted = kept + (logits - kept).mean(0, keepdim=True)
    loss = lambda z: F.cross_entropy(z[train], labels[train]).item()  # noqa: E731
    return loss(restricted), loss(logits - kept)


def _configs(**extra):
    base = dict(p=P, d=16, steps=150, eval_every=50) | extra
    return [RunConfig(**base, n_train=n, seed=s) for n, s in [(180, 0), (260, 1), (220, 7)]]


def test_restricted_and_excluded_losses_equal_the_slow_way_run_by_run():
    cohort = Cohort(_configs(), dtype=torch.float64)
    cohort.train(lambda rows: None, until=100)
    out = cohort.probe.measure(cohort.flat.detach(), cohort.lay, cohort.fast)
    from grokterm.experiment.model import forward

    for r, cfg in enumerate(cohort.configs):
        x, labels, train = pair_grid(cfg)
        logits = forward(
            cohort.flat.detach()[r : r + 1],
            cohort.lay,
            x[None],
            torch.zeros(1, len(x), dtype=torch.long),
        )[0]
        restricted, excluded = _slow_losses(logits, out["key_frequencies"][r], labels, train)
        assert out["restricted_loss"][r] == pytest.approx(restricted, abs=1e-10)
        assert out["excluded_loss"][r] == pytest.approx(excluded, abs=1e-10)
        norms = circuits.frequency_norms(unpack(cohort.flat.detach(), cohort.lay)["embed"], P)
        assert out["fourier_gini"][r] == pytest.approx(circuits.gini(norms)[r].item())


def test_a_runs_measures_do_not_depend_on_its_cohort():
    configs = _configs()
    rows: dict = {}
    Cohort(configs, dtype=torch.float64).train(
        lambda b: rows.update({(r.run, r.step): r for r in b})
    )
    alone: dict = {}
    Cohort([configs[1]], dtype=torch.float64).train(lambda b: alone.update({r.step: r for r in b}))
    for step, row in alone.items():
        mixed = rows[(1, step)].values
        assert mixed["key_frequencies"] == row.values["key_frequencies"]
        for name in ("fourier_gini", "restricted_loss", "excluded_loss", "softmax_collapse"):
            assert mixed[name] == pytest.approx(row.values[name], abs=1e-9), (step, name)


def test_measures_come_every_kth_evaluation_and_at_the_end_or_never():
    rows: dict = {}
    configs = _configs(measure_every=2, steps=125, eval_every=25)
    Cohort(configs[:1]).train(lambda b: rows.update({r.step: r.values for r in b}))
    measured = [s for s, v in rows.items() if "restricted_loss" in v]
    assert measured == [0, 50, 100, 125]
    assert all("softmax_collapse" in v for v in rows.values())  # cheap: every evaluation
    never: dict = {}
    Cohort(_configs(measure_every=0)[:1]).train(
        lambda b: never.update({r.step: r.values for r in b})
    )
    assert not any("fourier_gini" in v for v in never.values())
    # what is measured is not what trains: the run is the same run
    assert (
        configs[0].identity()
        == RunConfig(**(configs[0].to_dict() | {"measure_every": 1})).identity()
    )


def test_softmax_collapse_counts_training_losses_exactly_zero_in_float32():
    cohort = Cohort(_configs()[:1])
    cohort.train(lambda rows: None, until=150)
    with torch.no_grad():
        unpack(cohort.flat, cohort.lay)["unembed"].mul_(1e4)  # every margin becomes huge
    (row,) = cohort.evaluate()
    assert row.values["train_acc"] > 0 and row.values["softmax_collapse"] == row.values["train_acc"]
