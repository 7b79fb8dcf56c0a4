"""`grokterm bench --device cuda --check`: the GPU path proven in one command of a few
minutes on one H100/H200, printing every number docs/gpu.md asks for.

1. the device and the torch build;
2. each engine's 4-run cohort against the reference trained alone on the same GPU
   (float64 within 1e-9; float32 within the bound the CPU tests use), and a resume
   from a checkpoint bit-for-bit with deterministic kernels;
3. each engine against the reference at d = 8, 32, 64 (n = 3000);
4. a scan of cohort sizes at d = 64, n = 5000, in run-steps per second per engine,
   up to memory or the time budget: where the GPU saturates;
5. peak memory against the planner's estimate for three cohort shapes (one 8-layer);
6. what TF32 matmuls do to a grokking curve (the demo's runs, float32 against tf32;
   on a CPU the rounding emulated);
7. the planner's GPU step model, and fig 3 and fig 6 at paper scale projected with it;
   from `grokterm bench --check` the model is saved (grokterm.gpu_model) for this
   machine's GPU dry runs.

It needs neither the store nor the app (the GPU box may lack textual). The sizes are a
dataclass, so the tests run the same code on the CPU at a tiny scale."""

from __future__ import annotations

import datetime
import io
import time
import traceback
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch

from grokterm import gpu_model
from grokterm.bench import bench_case, engines_on
from grokterm.config import RunConfig
from grokterm.devices import GPU_MEMORY_SHARE, WorkerSlot
from grokterm.experiment.reference import train_reference
from grokterm.experiment.tf32 import EmulatedTF32
from grokterm.experiment.trainer import Cohort, MetricRow, configure_torch
from grokterm.gpu_model import ScanPoint, saturation, step_model
from grokterm.planning import (
    GPU_STEP_SHAPE,
    cohort_bytes,
    gpu_cohort_cap,
    gpu_estimate_seconds,
    plan_on,
    run_work,
)
from grokterm.presets import RunSpec, load_preset

FLOAT64_TOL = 1e-9
FLOAT32_TOL = 1e-3  # relative, through step 100 (tests/test_engines.py)
PRESETS = Path(__file__).resolve().parent.parent / "presets"


@dataclass(frozen=True)
class Sizes:
    """How big each part of the check is; the defaults fit in 5 minutes on an H200."""

    exact_steps: int = 200
    bench_d: tuple[int, ...] = (8, 32, 64)
    bench_n: int = 3000
    bench_runs: int = 64
    bench_steps: int = 50
    reference_runs: int = 2
    scan: tuple[int, ...] = (1, 4, 16, 64, 256, 1024, 4096)
    scan_d: int = 64
    scan_n: int = 5000
    scan_steps: int = 20
    memory_shapes: tuple[tuple[int, int, int, int], ...] = (  # layers, d, n, runs
        (1, 64, 5000, 64), (2, 256, 2800, 8), (8, 512, 6000, 1),
    )  # fmt: skip
    budget_s: float = 200.0  # the scan stops growing past this much of the check
    precision_steps: int = 4000  # the demo's grokking runs, float32 against tf32
    precision_seeds: tuple[int, ...] = (0, 1, 2, 3)
    figures: tuple[str, ...] = ("fig3", "fig6")


TINY = Sizes(exact_steps=30, bench_d=(8,), bench_n=200, bench_runs=2, bench_steps=2, reference_runs=1,
             scan=(1, 2), scan_d=8, scan_n=200, scan_steps=2,
             memory_shapes=((1, 8, 100, 2), (2, 8, 60, 1)), precision_steps=50,
             figures=("fig6",))  # fmt: skip


class CheckFailed(Exception):
    """A number outside its bound; the check goes on and exits 1."""


def run_check(device: str, sizes: Sizes = Sizes(), out: Callable[[str], None] = print,
              save_to: Path | None = None) -> int:  # fmt: skip
    """Every part in turn; 0 when every bound held, 1 when one did not. With `save_to`,
    the fitted step model is saved there for this machine's dry runs (gpu_model)."""
    configure_torch()
    start, failures, failed = time.monotonic(), [], set()
    out(describe_device(device))
    for part in (_exactness, _throughput, _scan, _memory, _precision, _projection):
        try:
            part(device, sizes, out, start)
        except CheckFailed as err:
            failures.append(str(err))
            out(f"FAIL: {err}")
        except Exception as err:  # noqa: BLE001  (one part's error must not hide the rest)
            failures.append(f"{part.__name__}: {type(err).__name__}: {err}")
            failed.add(part)
            out(f"ERROR in {part.__name__.strip('_')}: {type(err).__name__}: {err}")
            out("".join(traceback.format_exception(err)[-3:]).rstrip())
    if save_to is not None and SCANNED and _scan not in failed:  # not a scan cut short
        where = gpu_model.save(measured_model(device, sizes), save_to)
        out(f"saved the step model to {where}: a GPU dry run here estimates wall time with it")
    out(f"check took {time.monotonic() - start:.0f} s; "
        + ("every bound held" if not failures else f"{len(failures)} failed"))  # fmt: skip
    return 1 if failures else 0


def describe_device(device: str) -> str:
    build = f"torch {torch.__version__}"
    if not device.startswith("cuda"):
        return f"device {device} ({torch.backends.cpu.get_cpu_capability()}), {build}"
    p = torch.cuda.get_device_properties(device)
    return (f"device {device}: {p.name}, {p.total_memory / 2**30:.0f} GiB, compute "
            f"{p.major}.{p.minor}, {p.multi_processor_count} SMs; {build}, CUDA "
            f"{torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}")  # fmt: skip


# -- 2. exactness and resume --------------------------------------------------------------


def _configs(steps: int) -> list[RunConfig]:
    base = dict(p=23, d=16, steps=steps, eval_every=25)
    return [
        RunConfig(**base, n_train=n, seed=s) for n, s in [(180, 0), (260, 1), (220, 7), (300, 3)]
    ]


def _curves(configs, device, dtype, engine, stop: int | None = None) -> dict:
    rows: dict[tuple[int, int], MetricRow] = {}
    record = lambda b: rows.update({(r.run, r.step): r for r in b})  # noqa: E731
    cohort = Cohort(configs, device=device, dtype=dtype, engine=engine)
    if stop is not None:  # train to `stop`, checkpoint, resume in a new cohort
        cohort.train(record, should_stop=lambda: cohort.step >= stop)
        buffer = io.BytesIO()
        torch.save(cohort.state_dict(), buffer)
        cohort = Cohort(configs, device=device, dtype=dtype, engine=engine)
        cohort.load_state_dict(torch.load(io.BytesIO(buffer.getvalue()), weights_only=True))
    cohort.train(record)
    return rows


def _worst(cohort: dict, configs, device, dtype, relative: bool, until: int) -> float:
    worst = 0.0
    for i, cfg in enumerate(configs):
        ref: dict[int, dict] = {}
        train_reference(cfg, lambda step, m, ref=ref: ref.update({step: m}), dtype, device)
        for step, metrics in ref.items():
            if step > until:
                continue
            for key, value in metrics.items():
                diff = abs(cohort[(i, step)].values[key] - value)
                worst = max(worst, diff / max(abs(value), 1.0) if relative else diff)
    return worst


EXACT: list[str] = []  # the engines every exactness bound held for: `auto` may pick them


def _exactness(device: str, sizes: Sizes, out, _start) -> None:
    configs, steps = _configs(sizes.exact_steps), sizes.exact_steps
    problems = []
    EXACT.clear()
    for engine in engines_on(device):
        try:
            f64, f32, same = _engine_exactness(configs, device, engine, steps)
        except Exception as err:  # noqa: BLE001  (the others are still worth measuring)
            out(f"exact {engine:<9s} ERROR {type(err).__name__}: {err}")
            problems.append(engine)
            continue
        out(f"exact {engine:<9s} float64 max |diff| {f64:.1e} (bound {FLOAT64_TOL:g})  "
            f"float32 max rel diff to step 100 {f32:.1e} (bound {FLOAT32_TOL:g})  "
            f"resume bit-for-bit: {'yes' if same else 'NO'}")  # fmt: skip
        if f64 > FLOAT64_TOL or f32 > FLOAT32_TOL or not same:
            problems.append(engine)
        else:
            EXACT.append(engine)
    if problems:
        raise CheckFailed(
            f"engines off the reference or not resuming exactly: {', '.join(problems)}"
        )


def _engine_exactness(configs, device: str, engine: str, steps: int) -> tuple[float, float, bool]:
    """Largest float64 and float32 differences from the reference, and whether a
    resumed cohort's float32 curves are the uninterrupted ones bit for bit."""
    f64 = _worst(_curves(configs, device, torch.float64, engine), configs, device,
                 torch.float64, relative=False, until=steps)  # fmt: skip
    straight = _curves(configs, device, torch.float32, engine)
    f32 = _worst(straight, configs, device, torch.float32, relative=True, until=100)
    resumed = _curves(configs, device, torch.float32, engine, stop=steps // 2 + 13)
    return f64, f32, resumed == straight


# -- 3, 4. throughput ---------------------------------------------------------------------


def _throughput(device: str, sizes: Sizes, out, _start) -> None:
    for d in sizes.bench_d:
        result = bench_case(d, sizes.bench_n, sizes.bench_runs, sizes.bench_steps, device,
                            sizes.reference_runs)  # fmt: skip
        out("\n".join(result.lines()))


SCANNED: list[ScanPoint] = []  # what the projection uses


def _scan(device: str, sizes: Sizes, out, start: float) -> None:
    out(f"scan at d={sizes.scan_d} n={sizes.scan_n}: run-steps/s by cohort size")
    SCANNED.clear()
    for runs in sizes.scan:
        if time.monotonic() - start > sizes.budget_s:
            out(f"  (stopped before R={runs}: the check's time budget)")
            return
        config = RunConfig(p=113, d=sizes.scan_d, n_train=sizes.scan_n)
        # every engine's cohort is alive at once, timed in alternating rounds
        need = cohort_bytes([RunSpec("x", {}, config)] * runs) * len(engines_on(device))
        if device.startswith("cuda") and need > GPU_MEMORY_SHARE * _total_memory(device):
            out(
                f"  R={runs}: the planner's estimate for {len(engines_on(device))} cohorts, "
                f"{need / 2**30:.0f} GiB, exceeds the GPU; the scan stops"
            )
            return
        try:
            result = bench_case(sizes.scan_d, sizes.scan_n, runs, sizes.scan_steps, device,
                                reference_runs=1, p=113)  # fmt: skip
        except torch.OutOfMemoryError:
            out(f"  R={runs}: out of memory")
            return
        finally:
            _free(device)
        cells = []
        for engine, rate in result.rates.items():
            SCANNED.append(ScanPoint(runs, engine, rate, runs / rate))
            cells.append(f"{engine} {rate:10.1f}")
        best = max(result.rates.values())
        out(f"  R={runs:<5d} reference {result.reference_rate:8.1f}  " + "  ".join(cells)
            + f"  best/reference {best / result.reference_rate:7.1f}x")  # fmt: skip


# -- 5. memory ----------------------------------------------------------------------------


PEAKS: list[float] = []  # each shape's peak / the planner's estimate


def _memory(device: str, sizes: Sizes, out, _start) -> None:
    PEAKS.clear()
    if not device.startswith("cuda"):
        out("memory: peak GPU memory is measured on a GPU only")
        return
    for layers, d, n, runs in sizes.memory_shapes:
        task = dict(task="multitask", n_mem=n // 2) if layers > 1 else {}
        configs = [RunConfig(p=113 if layers == 1 else 59, d=d, n_layers=layers, n_train=n,
                             seed=s, **task) for s in range(runs)]  # fmt: skip
        estimate = cohort_bytes([RunSpec("x", {}, c) for c in configs])
        _free(device)
        torch.cuda.reset_peak_memory_stats(device)
        try:
            cohort = Cohort(configs, device=device)
            cohort.update()
            peak = torch.cuda.max_memory_allocated(device)
            PEAKS.append(peak / estimate)
            shown = f"{peak / 2**30:.2f} GiB, estimate {estimate / 2**30:.2f} GiB ({estimate / peak:.2f}x)"
        except torch.OutOfMemoryError:
            shown = f"out of memory; estimate {estimate / 2**30:.2f} GiB"
        finally:
            cohort = None
            _free(device)
        out(f"memory layers={layers} d={d} n={n} runs={runs}: peak {shown}")


def _total_memory(device: str) -> int:
    return torch.cuda.get_device_properties(device).total_memory


def _free(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


# -- 6. precision -------------------------------------------------------------------------


def _precision(device: str, sizes: Sizes, out, _start) -> None:
    """The demo's runs in float64, float32 and with TF32 matmuls (a GPU's own; on a CPU
    the rounding emulated, experiment/tf32.py). A run's grokking step moves with any
    rounding, so how far float32 moves it from float64 is the control for TF32's move."""
    configs = [RunConfig(p=59, d=64, lr=3e-3, n_train=1400, steps=sizes.precision_steps,
                         eval_every=50, seed=s) for s in sizes.precision_seeds]  # fmt: skip
    gpu = device.startswith("cuda")
    tf32 = "tf32" if gpu else "tf32 emulated"
    curves = {name: _curves(configs, device, dtype, "eager")
              for name, dtype in (("float64", torch.float64), ("float32", torch.float32))}  # fmt: skip
    try:
        torch.backends.cuda.matmul.allow_tf32 = gpu
        with nullcontext() if gpu else EmulatedTF32():
            curves[tf32] = _curves(configs, device, torch.float32, "eager")
    finally:
        torch.backends.cuda.matmul.allow_tf32 = False
    moved = {name: [] for name in ("float64", tf32)}
    for i, cfg in enumerate(configs):
        at = {name: _grokked(c, i) for name, c in curves.items()}
        final = " / ".join(f"{c[(i, cfg.steps)].values['val_acc']:.3f}" for c in curves.values())
        gaps = []
        for name in moved:
            gap = max(abs(curves[name][k].values["val_acc"] - row.values["val_acc"])
                      for k, row in curves["float32"].items() if k[0] == i)  # fmt: skip
            gaps.append(f"{name} {gap:.3f}")
            moved[name].append(None if None in (at[name], at["float32"])
                               else abs(at[name] - at["float32"]))  # fmt: skip
        out(f"precision seed {cfg.seed}: validation 0.9 at step "
            + " / ".join(f"{s} ({name})" for name, s in at.items())
            + f"; final {final}; largest |diff| from float32: {', '.join(gaps)}")  # fmt: skip
    out(f"precision: {tf32} moved the step validation reaches 0.9 by {_steps(moved[tf32])} "
        f"from float32; float64 moved it by {_steps(moved['float64'])} (the control)")  # fmt: skip


def _steps(moves: list[int | None]) -> str:
    known = [m for m in moves if m is not None]
    shown = f"{min(known)}-{max(known)} steps" if known else "no steps"
    return shown + (f" ({len(moves) - len(known)} runs never reached it)" if None in moves else "")


def _grokked(rows: dict, run: int) -> int | None:
    """The first evaluated step at which validation accuracy reaches 0.9."""
    steps = sorted(s for r, s in rows if r == run)
    return next((s for s in steps if rows[(run, s)].values["val_acc"] >= 0.9), None)


# -- 7. projection ------------------------------------------------------------------------


def _projection(device: str, sizes: Sizes, out, _start) -> None:
    """The planner's GPU step model from the scan (scaled to its reference shape), the
    cohort size past which a bigger cohort stops paying, and fig 3 and fig 6 at paper
    scale planned for one GPU and timed with that model."""
    if not SCANNED:
        out("projection: no scan to project from")
        return
    model = measured_model(device, sizes)
    fixed, per_run = model.step
    out(f"planner: GPU_STEP = ({fixed:.3g}, {per_run:.3g})  (s a step, s per run of "
        f"d={GPU_STEP_SHAPE.d} n={GPU_STEP_SHAPE.n_train}); rates saturate at R={model.saturates}")  # fmt: skip
    exact = "the fastest there of the exact engines" if EXACT else "no engine was found exact"
    out(f"auto trains with {model.engine} here ({exact})")
    if model.memory is not None:
        out(f"memory: GPU plans here scale the planner's estimates by {model.memory_factor:.2f}")
    memory = int(GPU_MEMORY_SHARE * _total_memory(device)) if device.startswith("cuda") else None
    one_gpu = [WorkerSlot("cuda", 1, memory)]  # a GPU's plan (unlimited in the CPU tests)
    for name in sizes.figures:
        specs = load_preset(PRESETS / f"{name}.toml").at_scale("paper").expand()
        cohorts, _ = plan_on(
            specs, one_gpu, None, gpu_cohort_cap(model.saturates), model.memory_factor
        )
        seconds = gpu_estimate_seconds(cohorts, 1, model.step)
        out(f"projected {name} at paper scale on one {device}: {len(specs)} runs in "
            f"{len(cohorts)} cohorts of up to {max(map(len, cohorts))}, about {seconds / 60:.1f} min")  # fmt: skip


def measured_model(device: str, sizes: Sizes) -> gpu_model.StepModel:
    """The step model fitted to the scan, per run of the planner's reference shape, with
    the engine `auto` is to train with here and the memory ratio measured."""
    fixed, per_run = step_model(SCANNED)
    scanned = RunConfig(p=113, d=sizes.scan_d, n_train=sizes.scan_n)
    per_run *= run_work(GPU_STEP_SHAPE) / run_work(scanned)
    name = torch.cuda.get_device_name(device) if device.startswith("cuda") else device
    at = saturation(SCANNED)
    exact = [p for p in SCANNED if p.runs == at and p.engine in EXACT]
    engine = max(exact, key=lambda p: p.rate).engine if exact else "eager"
    return gpu_model.StepModel(fixed, per_run, at, engine, max(PEAKS) if PEAKS else None, name,
                               torch.__version__, datetime.date.today().isoformat())  # fmt: skip
