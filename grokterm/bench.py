"""Throughput of the cohort engine against the plain reference, in one process.

Both train the same runs (seeds 0..R-1) on the same device; the reference trains
them one at a time with torch.optim.AdamW, the engine as one cohort. Rates are
run-steps per second of training (evaluation excluded), after a few warm-up steps."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from grokterm.config import RunConfig
from grokterm.experiment.reference import ReferenceRun
from grokterm.experiment.trainer import Cohort

WARMUP_STEPS = 3


@dataclass
class BenchResult:
    d: int
    n: int
    runs: int  # cohort size
    reference_runs: int  # runs the reference was timed on (its rate is per run-step)
    steps: int
    device: str
    reference_rate: float  # run-steps per second
    engine_rate: float

    @property
    def ratio(self) -> float:
        return self.engine_rate / self.reference_rate

    def line(self) -> str:
        return (
            f"d={self.d:<4d} n={self.n:<5d} runs={self.runs:<3d} steps={self.steps:<4d} "
            f"device={self.device}  reference {self.reference_rate:8.1f} run-steps/s "
            f"(timed on {self.reference_runs} runs)  engine {self.engine_rate:8.1f} run-steps/s  "
            f"ratio {self.ratio:.2f}x"
        )


def bench_case(
    d: int, n: int, runs: int, steps: int, device: str, reference_runs: int | None = None,
    p: int = 113,
) -> BenchResult:  # fmt: skip
    configs = [RunConfig(p=p, d=d, n_train=n, seed=s) for s in range(runs)]
    reference_runs = min(runs, reference_runs or runs)
    ref_seconds = 0.0
    for cfg in configs[:reference_runs]:
        ref_seconds += _time_steps(ReferenceRun(cfg, device=device).update, steps, device)
    engine_seconds = _time_steps(Cohort(configs, device=device).update, steps, device)
    return BenchResult(
        d, n, runs, reference_runs, steps, device,
        reference_rate=reference_runs * steps / ref_seconds,
        engine_rate=runs * steps / engine_seconds,
    )  # fmt: skip


def _time_steps(update: Callable[[], None], steps: int, device: str) -> float:
    for _ in range(WARMUP_STEPS):
        update()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        update()
    _sync(device)
    return time.perf_counter() - start


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
