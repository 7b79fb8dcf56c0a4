"""TF32 matmuls emulated on the CPU: the check measures what `--precision tf32` does to a
grokking curve with it where no GPU is, so it must drop exactly TF32's 13 bits, in every
matrix product of a training step (backward too), and nothing else."""

from contextlib import nullcontext

import torch

from grokterm.config import RunConfig
from grokterm.experiment.tf32 import EmulatedTF32, round_tf32
from grokterm.experiment.trainer import Cohort

ULP = 2.0**-10  # TF32's spacing at 1


def test_values_round_to_the_nearest_tf32_with_ties_to_even():
    x = torch.tensor([1 + ULP / 2, 1 + ULP / 2 + ULP / 8, 1 + 1.5 * ULP, -(1 + 1.5 * ULP),
                      1 + ULP / 4, 3.0, float("inf")])  # fmt: skip
    want = torch.tensor([1.0, 1 + ULP, 1 + 2 * ULP, -(1 + 2 * ULP), 1.0, 3.0, float("inf")])
    assert torch.equal(round_tf32(x), want)
    many = torch.randn(10_000)
    kept = round_tf32(many)
    assert ((kept.view(torch.int32) & 0x1FFF) == 0).all()  # 10 mantissa bits left
    assert ((kept - many).abs() <= many.abs() * 2.0**-11).all()  # half a TF32 ulp
    square = torch.randn(64, 64)
    assert torch.equal(round_tf32(square.t()), round_tf32(square.t().contiguous()))


def test_every_product_forward_and_backward_multiplies_rounded_factors():
    torch.manual_seed(0)
    a = torch.randn(3, 4, 5, requires_grad=True)
    b, w = torch.randn(3, 5, 2), torch.randn(2, 6)
    with EmulatedTF32():
        y = torch.einsum("rij,rjk->rik", a, b) @ w
        (grad,) = torch.autograd.grad(y.square().sum(), a)
    ra, rb, rw = round_tf32(a.detach()), round_tf32(b), round_tf32(w)
    h = torch.bmm(ra, rb)
    assert torch.equal(y, (round_tf32(h).flatten(0, 1) @ rw).view(3, 4, 6))
    dh = round_tf32(2 * y.detach()).flatten(0, 1) @ round_tf32(w.t().contiguous())
    assert torch.equal(grad, torch.bmm(round_tf32(dh.view(3, 4, 2)), round_tf32(b.transpose(1, 2))))
    (plain,) = torch.autograd.grad((torch.einsum("rij,rjk->rik", a, b) @ w).square().sum(), a)
    assert not torch.equal(grad, plain)  # outside the mode, products are float32's


def test_float64_and_elementwise_work_are_untouched():
    x, y = torch.randn(4, 4, dtype=torch.float64), torch.randn(4, 4)
    with EmulatedTF32():
        assert torch.equal(x @ x, torch.mm(x, x))
        assert torch.equal((y * y).sum(), (y * y).sum())
        assert torch.equal(torch.softmax(y, -1), torch.softmax(y, -1))


def test_a_cohort_trained_with_it_stays_within_tf32s_rounding():
    """A short training run moves only by TF32's relative 1e-3 per product, growing
    over steps: far from float32's own 1e-7, far below a curve's visible scale."""
    configs = [RunConfig(p=17, d=16, n_train=120, steps=20, eval_every=10, seed=s)
               for s in (0, 1)]  # fmt: skip

    def curves(emulate: bool) -> dict:
        rows = {}
        cohort = Cohort(configs, engine="eager")
        with EmulatedTF32() if emulate else nullcontext():
            cohort.train(lambda b: rows.update({(r.run, r.step): r.values for r in b}))
        return rows

    f32, tf32 = curves(False), curves(True)
    assert f32.keys() == tf32.keys()
    gaps = [abs(tf32[k]["train_loss"] - f32[k]["train_loss"]) / f32[k]["train_loss"] for k in f32]
    assert 0 < max(gaps) < 0.05
