"""What `grokterm bench --device cuda --check` measured on this machine's GPU, kept in a
small JSON file, so that GPU plans use this GPU's own numbers rather than constants
fitted on another one: a dry run's wall time (the step model), the cohort size cap,
the memory model's correction, and the engine `auto` trains with. No torch: the CLI
reads it while it plans, and a worker when it picks its engine.

The file is $GROKTERM_GPU_MODEL, else grokterm/gpu-step.json under the user's cache
folder ($XDG_CACHE_HOME, else ~/.cache)."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from grokterm.planning import GPU_STEP


@dataclass(frozen=True)
class StepModel:
    """A step of a cohort on this GPU: `fixed` seconds plus `per_run` seconds per run of
    planning.GPU_STEP_SHAPE (scaled by each run's work), with what it was measured on."""

    fixed: float
    per_run: float
    saturates: int  # the cohort size past which the scan's rate grew less than 10%
    engine: str  # the fastest engine at that size of those the check found exact
    memory: float | None  # the largest peak / planner's estimate measured; None: not measured
    device: str  # the GPU's name, as torch gives it
    torch: str
    measured: str  # the date, ISO

    @property
    def step(self) -> tuple[float, float]:
        return self.fixed, self.per_run

    @property
    def memory_factor(self) -> float:
        """What this GPU's plans scale the planner's memory estimates by: the measured
        ratio, never below 1 (a shape the check did not measure may need the estimate)."""
        return max(self.memory or 1.0, 1.0)

    def source(self) -> str:
        return (
            f"step model measured on {self.device} on {self.measured} by `grokterm bench --check`"
        )


def path() -> Path:
    if named := os.environ.get("GROKTERM_GPU_MODEL"):
        return Path(named)
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "grokterm" / "gpu-step.json"


MAX_STEP_S = 3600.0  # seconds a step or a run; past this a file is not a measurement
MAX_SATURATES = 1 << 20
MAX_MEMORY = 100.0  # a peak this many times the estimate, or a hundredth, is not one
MEASURED_ENGINES = ("eager", "compiled", "graphs")


def load(where: Path | None = None) -> StepModel | None:
    """The saved model; None where none was saved. A file that cannot be read as one
    raises ValueError naming it and what is wrong."""
    where = where or path()
    try:
        data = json.loads(where.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        raise ValueError(f"{where}: not a saved GPU step model ({err})") from None
    names = {f.name for f in fields(StepModel)}
    if not isinstance(data, dict) or set(data) != names:
        raise ValueError(f"{where}: not a saved GPU step model (expected the keys "
                         f"{', '.join(sorted(names))})")  # fmt: skip
    model = StepModel(**data)
    if not _plausible(model):
        raise ValueError(f"{where}: not a saved GPU step model (expected seconds a step from 0 "
                         f"to {MAX_STEP_S:g}, a cohort size from 1 to {MAX_SATURATES}, an engine "
                         f"of {', '.join(MEASURED_ENGINES)}, a memory ratio from 0.01 to "
                         f"{MAX_MEMORY:g} or null, and three names)")  # fmt: skip
    return model


def _plausible(m: StepModel) -> bool:
    def number(x, low: float, high: float) -> bool:
        return isinstance(x, (int, float)) and not isinstance(x, bool) and low <= x <= high

    return (number(m.fixed, 0, MAX_STEP_S) and number(m.per_run, 0, MAX_STEP_S)
            and isinstance(m.saturates, int) and number(m.saturates, 1, MAX_SATURATES)
            and m.engine in MEASURED_ENGINES
            and (m.memory is None or number(m.memory, 1 / MAX_MEMORY, MAX_MEMORY))
            and all(isinstance(x, str) for x in (m.device, m.torch, m.measured)))  # fmt: skip


def save(model: StepModel, where: Path | None = None) -> Path:
    """Write the model atomically (a crash leaves the older file)."""
    where = where or path()
    where.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=where.parent, suffix=".tmp", delete=False) as f:
        json.dump(asdict(model), f, indent=1)
    os.replace(f.name, where)
    return where


MEASURE = "`grokterm bench --device cuda --check` measures this GPU's in about 5 minutes"


def step_for(here: bool = True) -> tuple[tuple[float, float] | None, str]:
    """The step model a GPU plan is timed with, and where it comes from: this GPU's as
    its check saved it (`here`: the workers are this machine's), else planning.GPU_STEP;
    else None and why there is none."""
    try:
        model = load() if here else None
    except ValueError as err:
        return None, f"{err}; {MEASURE}"
    if model:
        return model.step, model.source()
    return (GPU_STEP, "planning.GPU_STEP") if GPU_STEP else (None, f"no step model; {MEASURE}")


def saved() -> StepModel | None:
    """This machine's saved model for its plans and workers, or None where none was saved
    or the file cannot be read (a dry run names it: step_for)."""
    try:
        return load()
    except ValueError:
        return None


# -- the model fitted to the check's scan of cohort sizes ------------------------------


@dataclass
class ScanPoint:
    runs: int
    engine: str
    rate: float  # run-steps per second
    step_s: float


def best_points(points: list[ScanPoint]) -> dict[int, ScanPoint]:
    """The fastest engine's point at each scanned cohort size."""
    best: dict[int, ScanPoint] = {}
    for p in points:
        if p.runs not in best or p.rate > best[p.runs].rate:
            best[p.runs] = p
    return best


def step_model(points: list[ScanPoint]) -> tuple[float, float]:
    """Seconds a step of the best engine takes, as a + b * R at the scan's shape, by
    least squares over the scanned cohort sizes."""
    best = best_points(points)
    xs, ys = list(best), [p.step_s for p in best.values()]
    if len(xs) < 2:
        return ys[0], 0.0
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    b = max(b, 0.0)
    return max(my - b * mx, 0.0), b


def saturation(points: list[ScanPoint], within: float = 0.1) -> int:
    """The smallest scanned cohort size whose best rate is within 10% of the best rate
    at any size: past it a GPU has no more to give a bigger cohort."""
    best = best_points(points)
    top = max(p.rate for p in best.values())
    return min(r for r, p in best.items() if p.rate >= (1 - within) * top)
