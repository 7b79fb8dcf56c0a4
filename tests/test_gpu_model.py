"""The GPU step model the check saves, and a GPU dry run's estimate from it: this GPU's
own numbers, the file named where it cannot be read, and how to get one where none is."""

import json
import re

import pytest
from conftest import TINY, grokterm, write_preset

from grokterm import gpu_model
from grokterm.gpu_model import StepModel

MODEL = StepModel(fixed=0.002, per_run=0.001, saturates=256, engine="graphs", memory=1.3,
                  device="NVIDIA H200", torch="2.13.0+cu130", measured="2026-12-03")  # fmt: skip


def test_a_saved_model_loads_back_and_a_missing_one_is_none(tmp_path):
    where = gpu_model.save(MODEL, tmp_path / "cache" / "gpu-step.json")
    assert gpu_model.load(where) == MODEL
    assert gpu_model.load(tmp_path / "absent.json") is None
    assert list((tmp_path / "cache").iterdir()) == [where]  # no temporary file left


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '{"fixed": 1}',
                                  json.dumps(MODEL.__dict__ | {"fixed": -1.0}),
                                  json.dumps(MODEL.__dict__ | {"fixed": float("inf")}),
                                  json.dumps(MODEL.__dict__ | {"per_run": 1e300}),
                                  json.dumps(MODEL.__dict__ | {"per_run": True}),
                                  json.dumps(MODEL.__dict__ | {"saturates": "many"}),
                                  json.dumps(MODEL.__dict__ | {"saturates": 0}),
                                  json.dumps(MODEL.__dict__ | {"engine": "auto"}),
                                  json.dumps(MODEL.__dict__ | {"memory": 0}),
                                  json.dumps(MODEL.__dict__ | {"memory": "1.3"}),
                                  json.dumps(MODEL.__dict__ | {"device": 7})])  # fmt: skip
def test_a_damaged_model_file_is_named(tmp_path, text):
    bad = tmp_path / "gpu-step.json"
    bad.write_text(text)
    with pytest.raises(ValueError, match=re.escape(f"{bad}: not a saved GPU step model")):
        gpu_model.load(bad)


def test_the_file_is_the_settings_or_the_users_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("GROKTERM_GPU_MODEL", str(tmp_path / "m.json"))
    assert gpu_model.path() == tmp_path / "m.json"
    monkeypatch.delenv("GROKTERM_GPU_MODEL")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert gpu_model.path() == tmp_path / "grokterm" / "gpu-step.json"


def test_a_gpu_dry_run_estimates_with_this_gpus_saved_model(tmp_path, tiny):
    from grokterm.planning import gpu_estimate_seconds, plan
    from grokterm.presets import load_preset

    def dry_run(model_file):
        result = grokterm("run", str(tiny), "--dry-run", "--device", "cuda", cwd=tmp_path,
                          env={"GROKTERM_GPU_MODEL": str(model_file)})  # fmt: skip
        assert result.returncode == 0, result.stderr
        return result.stdout

    assert (
        "no estimate of GPU time yet: no step model; `grokterm bench --device cuda --check` "
        "measures this GPU's in about 5 minutes"
    ) in dry_run(tmp_path / "none.json")
    saved = gpu_model.save(MODEL, tmp_path / "model.json")
    seconds = gpu_estimate_seconds(plan(load_preset(tiny).expand(), 1, "cuda"), 1, MODEL.step)
    hours, rest = divmod(int(seconds), 3600)
    expected = (
        f"estimated wall time on 1 GPU workers: {hours}:{rest // 60:02d}:{rest % 60:02d} "
        "(step model measured on NVIDIA H200 on 2026-12-03 by `grokterm bench --check`)"
    )
    assert expected in dry_run(saved)
    saved.write_text("{")
    out = dry_run(saved)
    assert f"no estimate of GPU time yet: {saved}: not a saved GPU step model" in out
    assert "cohort 1:" in out  # the rest of the plan is still printed


def test_a_saved_scan_sets_how_large_a_gpu_cohort_grows(monkeypatch, tmp_path):
    from grokterm import sweeps
    from grokterm.planning import MAX_COHORT
    from grokterm.presets import load_preset

    many = load_preset(write_preset(tmp_path, TINY.replace("seeds = [0, 1]", "seeds = 300")))

    def largest() -> int:  # 600 runs of one model shape
        plan = sweeps.plan_sweep(many, "paper", "cuda", preview=True)
        return max(map(len, plan.cohorts))

    assert largest() == MAX_COHORT["cuda"]  # none measured: the default cap
    monkeypatch.setenv("GROKTERM_GPU_MODEL", str(gpu_model.save(MODEL, tmp_path / "m.json")))
    assert largest() == MODEL.saturates  # this GPU's rate grew until 256 runs a cohort
    (tmp_path / "m.json").write_text("{")
    assert largest() == MAX_COHORT["cuda"]  # a damaged file is as none (a dry run names it)


def test_a_clusters_gpus_are_not_estimated_with_this_machines_model(monkeypatch, tmp_path):
    from grokterm.plan_report import gpu_estimate
    from grokterm.planning import plan
    from grokterm.presets import load_preset

    monkeypatch.setenv("GROKTERM_GPU_MODEL", str(gpu_model.save(MODEL, tmp_path / "m.json")))
    cohorts = plan(load_preset(write_preset(tmp_path)).expand(), 1, "cuda")
    assert "measured on NVIDIA H200" in gpu_estimate(cohorts, 1)
    assert gpu_estimate(cohorts, 1, here=False).startswith("no estimate of GPU time yet")


async def test_the_presets_screen_times_a_gpu_box_with_its_saved_model(monkeypatch, tmp_path):
    """On a GPU box the app's presets are timed for its GPU workers as a dry run times
    them, not as CPU workers: with the step model its check saved, else not at all."""
    import shutil
    from pathlib import Path

    from test_app import settle

    from grokterm.devices import WorkerSlot
    from grokterm.planning import gpu_estimate_seconds, plan
    from grokterm.presets import load_preset
    from grokterm.tui.app import GroktermApp

    root = Path(__file__).resolve().parents[1]
    presets = tmp_path / "presets"
    presets.mkdir()
    shutil.copy(root / "presets" / "demo.toml", presets)
    gpu = [WorkerSlot("cuda:0", 1, memory=68 * 2**30)]
    monkeypatch.setattr(GroktermApp, "slots", lambda self: gpu)
    demo = load_preset(presets / "demo.toml").expand()
    seconds = int(gpu_estimate_seconds(plan(demo, 1, "cuda"), 1, MODEL.step))

    async def info() -> str:
        app = GroktermApp(tmp_path / "runs.db", presets, device="cuda")
        async with app.run_test(size=(100, 32)) as pilot:
            await settle(pilot)
            return str(app.screen.query_one("#preset-info").render())

    assert " paper: 4 runs, on 1 GPU workers: no estimate yet" in await info()
    monkeypatch.setenv("GROKTERM_GPU_MODEL", str(gpu_model.save(MODEL, tmp_path / "m.json")))
    hours, rest = divmod(seconds, 3600)
    assert (f" paper: 4 runs, about {hours}:{rest // 60:02d}:{rest % 60:02d} on 1 GPU workers"
            in await info())  # fmt: skip


def test_a_model_with_no_memory_measured_loads_back(tmp_path):
    cpu = StepModel(**MODEL.__dict__ | {"memory": None, "engine": "compiled"})
    assert gpu_model.load(gpu_model.save(cpu, tmp_path / "m.json")) == cpu


def test_a_gpu_plan_here_fits_cohorts_to_the_memory_its_check_measured(monkeypatch, tmp_path):
    """A step that peaked at twice the planner's estimate on this GPU gets cohorts half as
    large in the same memory, and a run past it alone is warned about at its measured
    size; the estimate is never scaled down (a shape the check did not measure)."""
    from dataclasses import replace

    from grokterm import sweeps
    from grokterm.devices import WorkerSlot
    from grokterm.planning import gib, run_bytes
    from grokterm.presets import load_preset

    one_shape = TINY.replace("seeds = [0, 1]", "seeds = 300").replace("[80, 120]", "[120]")
    specs = load_preset(write_preset(tmp_path, one_shape)).expand()
    memory = 40 * run_bytes(specs[0])
    gpu = [WorkerSlot("cuda:0", 1, memory=memory)]

    def largest(model) -> int:
        monkeypatch.setenv("GROKTERM_GPU_MODEL", str(gpu_model.save(model, tmp_path / "m.json")))
        return max(map(len, sweeps.cohorts_on(specs, gpu)[0]))

    assert largest(replace(MODEL, memory=None)) == 40
    assert largest(replace(MODEL, memory=0.5)) == 40
    assert largest(replace(MODEL, memory=2.0)) == 20
    assert largest(replace(MODEL, memory=2.0, saturates=8)) == 20  # the cap is at least 64
    small = [WorkerSlot("cuda:0", 1, memory=int(1.5 * run_bytes(specs[0])))]
    monkeypatch.setenv("GROKTERM_GPU_MODEL", str(gpu_model.save(MODEL, tmp_path / "m.json")))
    assert sweeps.cohorts_on(specs, small)[1] == []  # 1.3x the estimate still fits
    gpu_model.save(replace(MODEL, memory=2.0), tmp_path / "m.json")
    (warning,) = sweeps.cohorts_on(specs, small)[1]
    assert f"about {gib(2 * run_bytes(specs[0]))}" in warning
    assert sweeps.cohorts_on(specs, small, address="ray://head:10001")[1] == []  # not here


def test_auto_on_this_gpu_is_the_engine_its_check_found_fastest(monkeypatch, tmp_path):
    """A worker's `auto` on a GPU trains with the engine the check saved, eager where none
    was saved or the file is damaged; on a CPU the saved model does not matter."""
    from dataclasses import replace

    from grokterm.config import RunConfig
    from grokterm.worker import cohort_engine

    long = [RunConfig(p=113, d=64, n_train=5000, steps=40_000)] * 64
    assert cohort_engine("auto", "cuda:0", long) == "eager"  # none measured yet
    for engine in ("graphs", "compiled", "eager"):
        gpu_model.save(replace(MODEL, engine=engine))  # (the conftest's GROKTERM_GPU_MODEL)
        assert cohort_engine("auto", "cuda:0", long) == engine
        assert cohort_engine("eager", "cuda:0", long) == "eager"  # asked for: as asked
        assert cohort_engine("auto", "cpu", long) == "compiled"
    gpu_model.save(replace(MODEL, engine="compiled"))
    assert cohort_engine("auto", "cuda:0", long[:1] and [RunConfig(steps=10)]) == "eager"
    gpu_model.path().write_text("{")
    assert cohort_engine("auto", "cuda:0", long) == "eager"
