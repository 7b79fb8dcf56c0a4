"""What a dry run prints: the plan's summary (runs, cohorts, run-steps, the estimate on
this machine), then its first cohorts, or with --verbose every cohort and its runs."""

from __future__ import annotations

from datetime import timedelta

from grokterm import sweeps
from grokterm.devices import PREVIEW_GPU
from grokterm.planning import cohort_bytes, gib

SHOWN_COHORTS = 12  # a dry run lists this many cohorts; --verbose lists all, with runs


def gpu_estimate(cohorts, workers: int, here: bool = True) -> str:
    """The GPU wall time from the step model gpu_model.step_for gives, or why there is none."""
    seconds, source = sweeps.estimate(cohorts, workers, "cuda", here)
    if seconds is None:
        return f"no estimate of GPU time yet: {source}"
    return f"estimated wall time on {workers} GPU workers: {timedelta(seconds=int(seconds))} ({source})"


def print_plan(console, plan, verbose: bool = False) -> None:
    cohorts, slots = plan.cohorts, plan.slots
    run_steps = sum(s.config.steps for c in cohorts for s in c)
    console.print(f"{plan.preset.name} ({plan.scale}): {len(plan.specs)} runs in {len(cohorts)} "
                  f"cohorts, {run_steps:,} run-steps, {len(slots)} workers on {slots[0].device}")  # fmt: skip
    if plan.kind == "cpu":  # the estimate is fitted to CPU step times
        seconds, _ = sweeps.estimate(cohorts, len(slots), "cpu")
        console.print(
            f"estimated wall time on {len(slots)} CPU cores: {timedelta(seconds=int(seconds))}"
        )
    else:
        here = plan.address is None  # a cluster's GPUs are not the ones measured here
        console.print(gpu_estimate(cohorts, len(slots), here), soft_wrap=True, markup=False)
    if plan.kind != "cpu" and slots[0].memory:
        console.print(f"GPU memory per worker: {gib(slots[0].memory)} (cohorts sized to fit)")
        if slots[0].preview:
            console.print(f"(a preview: planned for {len({s.device for s in slots})} GPU(s) of "
                          f"{gib(PREVIEW_GPU)}; none is visible here)")  # fmt: skip
    largest = max(cohorts, key=cohort_bytes)
    console.print(f"largest cohort: {len(largest)} runs, ~{gib(cohort_bytes(largest))}"
                  + (f"; a worker has {gib(slots[0].memory)}" if slots[0].memory else ""))  # fmt: skip
    for line in plan.warnings:
        console.print(line, soft_wrap=True, markup=False)
    shown = cohorts if verbose else cohorts[:SHOWN_COHORTS]
    lines = []  # one print: rich renders each call on its own, slowly for thousands
    for i, cohort in enumerate(shown, 1):
        cfg = cohort[0].config
        lines.append(f"  cohort {i}: task={cfg.task} d={cfg.d} layers={cfg.n_layers} "
                     f"steps={cfg.steps}, {len(cohort)} runs, ~{gib(cohort_bytes(cohort))}")  # fmt: skip
        lines.extend(f"    {spec.key}" for spec in cohort if verbose)
    if len(shown) < len(cohorts):
        lines.append(f"  ... {len(cohorts) - len(shown)} more cohorts (--verbose lists every "
                     "cohort and its runs)")  # fmt: skip
    console.print("\n".join(lines), markup=False, highlight=False, soft_wrap=True)
