"""Throughput of the cohort engine's training steps against the plain reference, in
one process.

All train the same runs (seeds 0..R-1) on the same device; the reference trains them
one at a time with torch.optim.AdamW, each engine as one cohort. Rates are run-steps
per second of training (evaluation excluded), after warm-up steps that also compile or
capture; the engines are timed in alternating rounds, so a machine's load drifting
over the measurement touches them alike and their ratios hold within one run."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from grokterm.config import RunConfig
from grokterm.experiment.reference import ReferenceRun
from grokterm.experiment.trainer import Cohort

WARMUP_STEPS = 3
ROUNDS = 3


def engines_on(device: str) -> list[str]:
    """The engines a device runs: graphs capture CUDA graphs."""
    return ["eager", "compiled"] + (["graphs"] if device.startswith("cuda") else [])


@dataclass
class BenchResult:
    d: int
    n: int
    runs: int  # cohort size
    reference_runs: int  # runs the reference was timed on (its rate is per run-step)
    steps: int
    device: str
    reference_rate: float  # run-steps per second
    rates: dict[str, float] = field(default_factory=dict)  # by engine
    first_step_s: dict[str, float] = field(default_factory=dict)  # with compile or capture

    def ratio(self, engine: str) -> float:
        return self.rates[engine] / self.reference_rate

    def lines(self) -> list[str]:
        head = (
            f"d={self.d:<4d} n={self.n:<5d} runs={self.runs:<3d} steps={self.steps:<4d} "
            f"device={self.device}  reference {self.reference_rate:8.1f} run-steps/s "
            f"(timed on {self.reference_runs} runs)"
        )
        out = [head]
        for engine, rate in self.rates.items():
            line = f"  {engine:<9s} {rate:8.1f} run-steps/s  ratio {self.ratio(engine):6.2f}x"
            if engine != "eager" and "eager" in self.rates:
                line += f"  ({rate / self.rates['eager']:.2f}x eager; first step "
                line += f"{self.first_step_s[engine]:.1f} s)"
            out.append(line)
        return out


def bench_case(
    d: int, n: int, runs: int, steps: int, device: str, reference_runs: int | None = None,
    p: int = 113, engines: list[str] | None = None,
) -> BenchResult:  # fmt: skip
    configs = [RunConfig(p=p, d=d, n_train=n, seed=s) for s in range(runs)]
    reference_runs = min(runs, reference_runs or runs)
    ref_seconds = 0.0
    for cfg in configs[:reference_runs]:
        reference = ReferenceRun(cfg, device=device)
        _time_steps(reference.update, WARMUP_STEPS, device)
        ref_seconds += _time_steps(reference.update, steps, device)
    result = BenchResult(
        d, n, runs, reference_runs, steps, device, reference_runs * steps / ref_seconds
    )
    names = engines or engines_on(device)
    cohorts = {e: Cohort(configs, device=device, engine=e) for e in names}
    for e, cohort in cohorts.items():
        result.first_step_s[e] = _time_steps(cohort.update, 1, device)
        _time_steps(cohort.update, WARMUP_STEPS - 1, device)
    seconds = dict.fromkeys(names, 0.0)
    rounds = min(ROUNDS, steps)
    for r in range(rounds):
        chunk = steps // rounds + (r < steps % rounds)
        for e, cohort in cohorts.items():
            seconds[e] += _time_steps(cohort.update, chunk, device)
    result.rates = {e: runs * steps / seconds[e] for e in names}
    return result


def _time_steps(update: Callable[[], None], steps: int, device: str) -> float:
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        update()
    _sync(device)
    return time.perf_counter() - start


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
