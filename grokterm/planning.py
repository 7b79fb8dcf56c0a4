"""Which runs share a cohort, how big cohorts are, and what a sweep costs in time and
memory on the workers it is given. Pure functions over RunSpecs: no torch, no store."""

from __future__ import annotations

import math
from itertools import groupby

from grokterm.config import RunConfig
from grokterm.devices import WorkerSlot, slots_kind
from grokterm.presets import RunSpec

MAX_COHORT = {"cpu": 8, "cuda": 64}
# Bytes of activations a run keeps for its backward pass, per example, position, layer
# and unit of d, with the backward's own peak, by model path. Measured as a CPU eager
# step's peak resident memory less the process's (2026-12-03, cohorts of 2-16 runs):
# the full-sequence model 54-82 (2 layers; 70-100 at 2-8 layers on 2026-11-24), so 96
# with room; the 1-layer last-position model, whose MLP and query see the last position
# only, 25-41 (it was charged 96: 1.8-3.3x its peak). Deep rungs of figs 8 and 10 need
# tens of GB per run at paper scale. On a GPU `grokterm bench --check` measures the
# ratio and saves it: this machine's GPU plans scale their estimates up by it (plan_on).
ACTIVATION_BYTES = {"full": 96, "last": 40}


def plan_cohorts(
    specs: list[RunSpec], workers: int, max_size: int, memory: int | None = None
) -> list[list[RunSpec]]:
    """Group runs that can share a program, sorted by training-set size to keep
    padding small, in chunks small enough that every worker gets work and, given a
    worker's memory, that fit in it. Workers take cohorts in this order, so the
    longest go first and the short ones fill the gaps."""
    size = max(1, min(max_size, math.ceil(len(specs) / max(workers, 1))))
    ordered = sorted(specs, key=lambda s: (s.config.cohort_key(), s.config.batch))
    cohorts = []
    for _, group in groupby(ordered, key=lambda s: s.config.cohort_key()):
        group = list(group)
        k = size if memory is None else max(1, min(size, memory // run_bytes(group[-1])))
        cohorts += [group[i : i + k] for i in range(0, len(group), k)]
    return sorted(cohorts, key=_cohort_seconds, reverse=True)


def run_bytes(spec: RunSpec, examples: int | None = None) -> int:
    """Rough memory one run takes in a training step: float32 parameters, gradient and
    two AdamW moments, the activations kept for backward over its training set
    (padded to `examples` in a cohort), and the logits with their gradient."""
    c, n = spec.config, examples or spec.config.batch
    per = ACTIVATION_BYTES["last" if last_position_only(c) else "full"]
    activations = per * n * c.seq_len * c.n_layers * c.d
    return 16 * c.n_params + activations + 16 * n * c.p


def last_position_only(c: RunConfig) -> bool:
    """Whether the engine runs the model's fast path (grokterm.experiment.model.forward):
    one layer without LayerNorm, computed at the last position only."""
    return c.n_layers == 1 and not c.layernorm


def cohort_bytes(cohort: list[RunSpec]) -> int:
    """Rough memory of a cohort's training step: its runs share one model shape and
    are padded to its largest training set."""
    return len(cohort) * run_bytes(cohort[0], max(s.config.batch for s in cohort))


def memory_warnings(cohorts: list[list[RunSpec]], memory: int | None,
                    factor: float = 1.0) -> list[str]:  # fmt: skip
    """A line for the runs that need more memory than a worker has, even alone (their
    estimate times `factor`, the correction a GPU's check measured)."""
    if memory is None:
        return []
    need = lambda spec: int(run_bytes(spec) * factor)  # noqa: E731
    big = sorted((c[0] for c in cohorts if len(c) == 1 and need(c[0]) > memory),
                 key=need, reverse=True)  # fmt: skip
    if not big:
        return []
    runs = f"{len(big)} runs need" if len(big) > 1 else "run needs"
    return [f"warning: {runs} more memory than the {gib(memory)} a worker has; the largest, "
            f"{big[0].key}, about {gib(need(big[0]))}: it may run out of memory"]  # fmt: skip


DAY_S = 86_400  # an estimate past a day on this machine is worth a warning


def time_warnings(cohorts: list[list[RunSpec]], slots: list[WorkerSlot]) -> list[str]:
    """A line where the estimated wall time on these CPU workers exceeds a day."""
    if slots_kind(slots) != "cpu" or (seconds := estimate_seconds(cohorts, len(slots))) <= DAY_S:
        return []
    return [f"warning: estimated {seconds / DAY_S:,.0f} days on {len(slots)} CPU cores; this "
            "scale is meant for a GPU (--dry-run --device cuda previews a GPU's plan)"]  # fmt: skip


def gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB"


def gpu_cohort_cap(saturates: int | None = None) -> int:
    """The largest GPU cohort: at least as large as the size at which this GPU's rate
    stopped growing in the check's scan (`saturates`, gpu_model), else MAX_COHORT."""
    return max(MAX_COHORT["cuda"], saturates or 0)


def plan(
    specs: list[RunSpec], workers: int, kind: str, cohort_size: int | None = None,
    memory: int | None = None, gpu_cap: int | None = None,
) -> list[list[RunSpec]]:  # fmt: skip
    """The cohorts a sweep trains on `workers` of a device kind ("cpu" or "cuda"),
    each within a worker's `memory` where given (a run too big for it alone still
    gets a cohort of one). On a GPU batching runs is the speed-up, so cohorts are as
    large as keeps every worker busy and fits. On a CPU a cohort costs the sum of its
    runs (compute-bound), so what matters is balance: the size whose layout on the
    workers finishes soonest (fig 3 quick, 12 runs on 2 cores: cohorts of 4 took 3
    rounds, 1 h 34; of 1, 1 h 09). `gpu_cap`: the largest GPU cohort (gpu_cohort_cap)."""
    if cohort_size or kind != "cpu":
        cap = cohort_size or gpu_cap or MAX_COHORT[kind]
        return plan_cohorts(specs, workers, cap, memory)
    sizes = range(MAX_COHORT["cpu"], 0, -1)
    plans = [plan_cohorts(specs, workers, k, memory) for k in sizes]
    return min(plans, key=lambda cohorts: estimate_seconds(cohorts, workers))


def plan_on(
    specs: list[RunSpec], slots: list[WorkerSlot], cohort_size: int | None = None,
    gpu_cap: int | None = None, memory_factor: float = 1.0,
) -> tuple[list[list[RunSpec]], list[str]]:  # fmt: skip
    """The cohorts for these workers (their number, kind and memory), with warnings
    where a run is too big for a worker's memory even alone, or the sweep would take
    more than a day on this machine's CPU. `memory_factor`: how much more than run_bytes
    a GPU's check measured a step to take at its peak (gpu_model.StepModel)."""
    memory = slots[0].memory
    fits = None if memory is None else int(memory / memory_factor)
    cohorts = plan(specs, len(slots), slots_kind(slots), cohort_size, fits, gpu_cap)
    warnings = memory_warnings(cohorts, memory, memory_factor) + time_warnings(cohorts, slots)
    return cohorts, warnings


def estimate_seconds(cohorts: list[list[RunSpec]], workers: int) -> float:
    """Rough CPU wall time of a sweep, fitted to steps measured on one core of a
    2-core machine. A cohort pads every run to its largest training set, so it costs
    its size times its largest run. A worker trains one cohort at a time: the cohorts
    are laid out on the workers, longest first, and the busiest one sets the wall time."""
    return _wall(map(_cohort_seconds, cohorts), workers)


def _wall(cohort_seconds, workers: int) -> float:
    loads = [0.0] * max(workers, 1)
    for seconds in sorted(cohort_seconds, reverse=True):
        loads[loads.index(min(loads))] += seconds
    return max(loads)


# A GPU step of a cohort: a fixed cost (launches) plus a cost per run of the shape below,
# scaled by each run's work, as `grokterm bench --device cuda --check` measures and prints
# it on one GPU. None until measured on a GPU (docs/gpu.md): a GPU dry run says so.
GPU_STEP: tuple[float, float] | None = None
GPU_STEP_SHAPE = RunConfig(p=113, d=64, n_train=5000)


def run_work(c: RunConfig) -> float:
    """A run's work per step relative to another's: examples times (d^2 + d p) per layer."""
    return c.batch * c.n_layers * (c.d * c.d + c.d * c.p)


def gpu_estimate_seconds(
    cohorts: list[list[RunSpec]], workers: int, step: tuple[float, float] | None = None
) -> float | None:
    """Wall time of a sweep on `workers` GPU workers from a measured step model (default:
    GPU_STEP); None where none has been measured."""
    fixed, per_run = step or GPU_STEP or (None, None)
    if fixed is None:
        return None
    unit = run_work(GPU_STEP_SHAPE)
    seconds = (
        max(s.config.steps for s in c)
        * (fixed + per_run * sum(run_work(s.config) for s in c) / unit)
        for c in cohorts
    )
    return _wall(seconds, workers)


def _cohort_seconds(cohort: list[RunSpec]) -> float:
    return cohort_seconds([s.config for s in cohort])


def cohort_seconds(configs: list[RunConfig]) -> float:
    """Rough eager CPU seconds of one cohort: its size times its largest run."""
    return len(configs) * max(map(run_seconds, configs))


def run_seconds(c: RunConfig) -> float:
    """A fixed overhead, plus per example a constant (embedding, softmax over p) and a
    cost in d^2 + d * p (the MLP and unembedding). Single task fitted to d=64, n=3000
    (~20 ms a step) and fig 4's memorization runs (n = 12769: ~20 ms at d = 4, ~27 ms at
    d = 16). Multitask (four tokens, two accuracies; n = 2800, p = 59, one thread on
    an idle CPU, 2026-11-23) measured 10, 20, 47, 82, 136 ms at d = 32, 64, 128, 192,
    256; split FFN 11, 24, 52, 91, 146 ms (fig 10 quick's workers: 135 and 145 ms at
    d = 256, two side by side). Deeper models run every position through every layer:
    per example, position and layer a cost in d^2, fitted to fig 8's ladder at paper
    data (n = 6000, 2026-11-24): 3.5, 17.8, 38 s a step at (layers, d) = (2, 256),
    (4, 512), (8, 512). Checked on 2026-12-03 (AMD EPYC, one thread a worker, eager):
    two workers side by side took 0.55-1.13x it a step (add at d = 8 to 128, memorize,
    multitask), one alone 0.36-1.26x (small models run up to 1.7x faster alone)."""
    n, size = c.batch, c.n_layers * (c.d * c.d + c.d * c.p)
    if c.n_layers > 1:
        return c.steps * (6e-3 + 0.8e-9 * n * c.seq_len * c.n_layers * c.d * c.d)
    if c.task == "multitask":
        return c.steps * (6e-3 + (0.62e-9 if c.split_ffn else 0.58e-9) * n * size)
    return c.steps * (4e-3 + n * (1.08e-6 + 0.376e-9 * size))
