"""Every form of the training step trains a cohort as the eager step does: the compiled
step on the CPU here, the CUDA-graph step where a GPU is (skipped without one)."""

import io

import pytest
import torch
from test_engine import STEPS, TOL, as_dict, cohort_configs, train_cohort

from grokterm.config import RunConfig
from grokterm.experiment.engines import COMPILE_PAYS_S, resolve
from grokterm.experiment.trainer import Cohort

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def assert_same_curves(a: dict, b: dict, tol: float) -> None:
    assert a.keys() == b.keys()
    for key, row in a.items():
        got, want = as_dict(b[key]), as_dict(row)
        assert got.keys() == want.keys()
        for name, value in want.items():
            assert got[name] == pytest.approx(value, abs=tol), (key, name)


@pytest.mark.parametrize(
    "extra, fast",
    [({}, True), ({"n_layers": 2}, False), ({"task": "multitask", "split_ffn": True, "n_mem": 150}, True),
     ({"task": "div", "n_layers": 2, "n_heads": 1, "layernorm": True, "batch_size": 64}, True)],
    ids=["last-position", "two-layers", "multitask-split-ffn", "modelwise"],
)  # fmt: skip
def test_compiled_step_equals_eager_in_float64(extra, fast):
    configs = cohort_configs(**extra)
    eager = train_cohort(configs, dtype=torch.float64, fast=fast)
    compiled = train_cohort(configs, dtype=torch.float64, fast=fast, engine="compiled")
    assert_same_curves(eager, compiled, TOL)


def test_compiled_step_stays_within_float32_rounding_of_eager():
    """float32 sums in another order round differently (~1e-5 after 25 steps) and
    training amplifies it (relative 1e-4 by step 100); accuracies move by an example
    or two, no more."""
    configs = cohort_configs()
    eager = train_cohort(configs)
    compiled = train_cohort(configs, engine="compiled")
    for (run, step), row in eager.items():
        got = compiled[(run, step)].values
        for name in ("train_loss", "val_loss", "norm"):
            tol = 1e-3 if step <= 100 else 2e-2
            assert got[name] == pytest.approx(row.values[name], rel=tol, abs=tol), (run, step)
        for name in ("train_acc", "val_acc"):
            assert abs(got[name] - row.values[name]) <= 0.03, (run, step, name)


def _resumed(configs, engine: str, stop: int, device: str = "cpu") -> dict:
    rows: dict = {}
    record = lambda b: rows.update({(r.run, r.step): r for r in b})  # noqa: E731
    first = Cohort(configs, engine=engine, device=device)
    assert not first.train(record, should_stop=lambda: first.step >= stop)
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    second = Cohort(configs, engine=engine, device=device)
    second.load_state_dict(torch.load(buffer))
    assert second.train(record)
    return rows


def test_compiled_cohort_resumes_bit_for_bit():
    """With deterministic kernels (configure_torch, as a worker runs; conftest sets them
    for the suite): without them inductor's CPU code adds the gather's backward
    atomically across threads and two identical trainings differ by rounding."""
    assert torch.are_deterministic_algorithms_enabled()
    configs = cohort_configs()
    straight = train_cohort(configs, engine="compiled")
    assert _resumed(configs, "compiled", 113) == straight


def test_a_checkpoint_of_one_engine_resumes_on_another():
    """The engine is not part of a run's identity: a sweep resumes with whichever one
    trains it, and the curves agree to rounding (exactly, in float64)."""
    configs = cohort_configs()
    eager = train_cohort(configs, dtype=torch.float64)
    first = Cohort(configs, dtype=torch.float64)
    first.train(lambda b: None, until=100)
    second = Cohort(configs, dtype=torch.float64, engine="compiled")
    second.load_state_dict(first.state_dict())
    rows: dict = {}
    second.train(lambda b: rows.update({(r.run, r.step): r for r in b}))
    assert min(step for _, step in rows) == 125
    assert_same_curves({k: v for k, v in eager.items() if k[1] > 100}, rows, TOL)


def test_auto_compiles_only_a_cpu_cohort_long_enough_to_repay_it():
    assert resolve("auto", "cpu", COMPILE_PAYS_S + 1) == "compiled"
    assert resolve("auto", "cpu", COMPILE_PAYS_S - 1) == "eager"
    assert resolve("auto", "cuda:0", 1e6) == "eager"  # until measured on a GPU
    assert resolve("auto", "cuda:0", 1e6, measured="graphs") == "graphs"
    assert resolve("auto", "cpu", 1e6, measured="graphs") == "compiled"  # a GPU's only
    assert resolve("compiled", "cpu", 0) == "compiled"
    with pytest.raises(ValueError, match="needs a CUDA device"):
        resolve("graphs", "cpu", 0)
    with pytest.raises(ValueError, match="expected one of auto, eager, compiled, graphs"):
        resolve("fast", "cpu", 0)


def test_cohort_refuses_an_unknown_engine():
    with pytest.raises(ValueError, match="expected eager, compiled or graphs"):
        Cohort(cohort_configs()[:1], engine="auto")


@cuda
@pytest.mark.parametrize("engine", ["eager", "compiled", "graphs"])
def test_cuda_engines_equal_the_cpu_in_float64(engine):
    configs = cohort_configs()
    cpu = train_cohort(configs, dtype=torch.float64)
    gpu = train_cohort(configs, dtype=torch.float64, device="cuda", engine=engine)
    assert_same_curves(cpu, gpu, TOL)


@cuda
@pytest.mark.parametrize("engine", ["eager", "graphs"])
def test_cuda_cohort_resumes_bit_for_bit(engine):
    from grokterm.experiment.trainer import configure_torch

    configure_torch()
    configs = [RunConfig(**(c.to_dict() | {"steps": STEPS})) for c in cohort_configs()]
    straight = train_cohort(configs, device="cuda", engine=engine)
    assert _resumed(configs, engine, 113, device="cuda") == straight


MODELWISE = {"task": "div", "n_layers": 2, "n_heads": 1, "layernorm": True, "batch_size": 64}


def test_a_minibatch_cohort_resumes_bit_for_bit():
    """Stopped at step 113, inside an epoch, the resumed runs draw the batches they
    would have drawn."""
    configs = cohort_configs(**MODELWISE)
    assert _resumed(configs, "eager", 113) == train_cohort(configs)


@cuda
def test_cuda_graphs_replay_each_steps_minibatch():
    configs = cohort_configs(**MODELWISE)
    cpu = train_cohort(configs, dtype=torch.float64)
    gpu = train_cohort(configs, dtype=torch.float64, device="cuda", engine="graphs")
    assert_same_curves(cpu, gpu, TOL)


def test_a_worker_flushes_denormals_on_every_thread_and_uses_deterministic_kernels():
    """A worker's settings, in a fresh process as a worker makes them: a large op, split
    over two threads, flushes every denormal result, not only the main thread's share."""
    import subprocess
    import sys

    code = (
        "import torch; from grokterm.experiment.trainer import configure_torch; "
        "configure_torch(2); y = torch.full((1 << 22,), 1e-30) * 1e-10; "
        "print(torch.get_num_threads(), int((y != 0).sum()), "
        "torch.are_deterministic_algorithms_enabled())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["2", "0", "True"]
