"""The training step, three ways; every one computes the same full-batch AdamW step.

- `eager`: plain torch ops, one kernel each; the plain path every other is tested against.
- `compiled`: the loss, its gradient (torch.func.grad) and the AdamW update traced as one
  graph by torch.compile, so inductor fuses the elementwise work (the update, the
  softmax, the masks) into a few loops. On the project's 2-core CPU 1.4-1.5x faster a
  step than eager (1.5-1.8x the eager step before 2026-12-02); tracing and compiling
  cost 10-30 s once per cohort shape (seconds when inductor's
  on-disk cache has it), so `auto` compiles only a cohort long enough to repay that.
- `graphs` (CUDA only): the eager step captured once as a CUDA graph and replayed, so a
  step is one launch instead of ~140 (a tiny model's step on a GPU is bound by launches).

The step counter of `compiled` and `graphs` is a tensor on the device, so nothing
returns to the host between evaluations. Which engine trains a cohort is not part of a
run's identity: float64 results agree to ~1e-14, float32 ones to rounding."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from grokterm.devices import ENGINES
from grokterm.experiment.model import Layout, forward

EPS = 1e-8  # AdamW's epsilon, torch's default
COMPILE_PAYS_S = 180.0  # estimated eager seconds past which compiling repays its cost
GRAPH_WARMUP = 3  # eager steps before capture (cuBLAS and the allocator settle)


def resolve(engine: str, device: str, eager_seconds: float, measured: str | None = None) -> str:
    """The engine that trains a cohort: `auto` is the one measured fastest on this kind
    of device. On a CPU that is compiled for a cohort long enough to repay compiling;
    on a GPU, `measured`: the fastest exact engine `grokterm bench --device cuda
    --check` found on this machine (grokterm.gpu_model), eager until it has run."""
    if engine not in ENGINES:
        raise ValueError(f"expected one of {', '.join(ENGINES)}, got {engine!r}")
    if engine == "graphs" and not device.startswith("cuda"):
        raise ValueError("engine 'graphs' captures CUDA graphs and needs a CUDA device")
    if engine != "auto":
        return engine
    fastest = (measured or "eager") if device.startswith("cuda") else "compiled"
    return fastest if fastest != "compiled" or eager_seconds >= COMPILE_PAYS_S else "eager"


def run_losses(flat, lay: Layout, fast: bool, x, y, group, weight) -> torch.Tensor:
    """Each run's mean training loss [R] (padding has weight 0)."""
    logits = forward(flat, lay, x, group, fast)
    ce = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none")
    return (ce.view_as(weight) * weight).sum(1)


def adamw_(flat, exp_avg, exp_avg_sq, grad, step, lr, wd, beta1, beta2, warmup) -> None:
    """One AdamW update in place, as torch.optim.AdamW computes it, for every run at
    once (hyper-parameters are [R, 1]). `step` (steps done) is an int or a tensor."""
    ramp = (step / warmup.clamp(min=1)).clamp(max=1.0)
    lr = lr * torch.where(warmup > 0, ramp, 1.0)
    t = step + 1
    bias1, bias2 = 1 - beta1**t, 1 - beta2**t
    flat.mul_(1 - lr * wd)
    exp_avg.lerp_(grad, 1 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad * (1 - beta2))
    denom = (exp_avg_sq.sqrt() / bias2.sqrt()).add_(EPS)
    flat.sub_((lr / bias1) * exp_avg / denom)


def _full_step(flat, exp_avg, exp_avg_sq, step, data, hyper, lay: Layout, fast: bool) -> None:
    """Gradient and update of every run, functionally (for tracing)."""
    grad = torch.func.grad(lambda f: run_losses(f, lay, fast, *data).sum())(flat)
    adamw_(flat, exp_avg, exp_avg_sq, grad, step, *hyper)


def _grad_step(flat, exp_avg, exp_avg_sq, step, data, hyper, lay: Layout, fast: bool) -> None:
    """The same step through autograd on a leaf that requires grad (capturable)."""
    (grad,) = torch.autograd.grad(run_losses(flat, lay, fast, *data).sum(), flat)
    with torch.no_grad():
        adamw_(flat, exp_avg, exp_avg_sq, grad, step, *hyper)
        step.add_(1)


_compiled = None


def compiled_step() -> Callable[..., None]:
    """One compiled function per process: cohorts of the same shape share its code, and a
    new shape compiles anew (dynamic=False: shapes fixed, the fastest kernels)."""
    global _compiled
    if _compiled is None:
        # (the step counter is advanced outside: an in-place add to a 0-d input of this
        # traced function was not written back under torch 2.13)
        import torch._dynamo

        # one entry per cohort shape a worker meets; past the limit torch falls back to
        # eager without a word, which would be a silent slowdown
        torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 256)
        _compiled = torch.compile(_full_step, dynamic=False)
    return _compiled


class GraphStep:
    """The eager step captured as a CUDA graph after a few warm-up steps, whose effect
    is undone so that capture changes no run. Replaying it reads and writes the same
    tensors (parameters, moments, the step counter) in place."""

    def __init__(self, state: tuple, data, hyper, lay: Layout, fast: bool):
        flat, exp_avg, exp_avg_sq, step = state
        saved = [t.clone() for t in state]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(GRAPH_WARMUP):
                _grad_step(*state, data, hyper, lay, fast)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            _grad_step(*state, data, hyper, lay, fast)
        with torch.no_grad():
            for t, s in zip(state, saved):
                t.copy_(s)

    def __call__(self) -> None:
        self.graph.replay()
