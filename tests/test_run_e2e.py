"""`grokterm run`, `ls` and `export` through the real command line."""

import csv
import io
import json
import os

from conftest import grokterm

from grokterm import provenance
from grokterm.labels import LABELS
from grokterm.store import Store


def test_tiny_sweep_with_two_workers_then_export_round_trips(tmp_path, tiny):
    # Cohorts of two: each worker trains two runs as one program.
    result = grokterm("run", str(tiny), "--workers", "2", "--cohort-size", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "4 runs in 2 cohorts, 2 workers on cpu" in result.stdout
    assert "finished: 4 runs done, 0 diverged" in result.stdout

    store = Store(tmp_path / "runs.db")
    sweep = store.sweep()
    runs = store.runs(sweep.id)
    assert [r.status for r in runs] == ["done"] * 4
    metrics = store.points(sweep.id)
    steps = list(range(0, 201, 20))
    for run in runs:
        assert [m.step for m in metrics if m.run_id == run.id] == steps
        assert run.step == 200 and run.value("train_acc") is not None
        # labelled from its whole curve, with the numbers behind the label
        assert run.label in LABELS and run.info.last_step == 200
        assert run.info.final_val == run.value("val_acc")
    workers = store.workers(sweep.id)
    assert len(workers) == 2 and all(w.status == "finished" for w in workers)
    # provenance: both workers recorded this machine and its torch build, as one
    import torch

    ((machine, count),) = store.machines(sweep.id).items()
    info = json.loads(machine)
    assert count == 2 and info["torch"] == torch.__version__ and info["engine"] == "auto"
    assert (
        info["cores"] == os.cpu_count() and info["isa"] == torch.backends.cpu.get_cpu_capability()
    )

    out = tmp_path / "runs.csv"
    assert grokterm("export", "--csv", str(out), cwd=tmp_path).returncode == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 4
    by_key = {r["key"]: r for r in rows}
    for run in runs:
        row = by_key[run.key]
        assert int(row["n_train"]) == run.config.n_train and row["status"] == "done"
        assert float(row["val_acc"]) == run.value("val_acc")
        assert float(row["norm"]) == run.value("norm")
        assert row["label"] == run.label
        assert (
            row["machine"] == provenance.describe(info)
            and f"torch {torch.__version__}" in row["machine"]
        )

    result = grokterm("export", "--csv", "-", "--metrics", "--sweep", "tiny", cwd=tmp_path)
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == len(metrics) == 4 * len(steps)
    assert {"run_id", "key", "n_train", "seed", "step", "train_acc", "val_acc", "norm"} <= set(
        rows[0]
    )
    first = next(m for m in metrics if m.run_id == runs[0].id and m.step == 100)
    row = next(r for r in rows if r["run_id"] == str(runs[0].id) and r["step"] == "100")
    assert float(row["train_loss"]) == first.get("train_loss")

    listing = grokterm("ls", cwd=tmp_path)
    assert listing.returncode == 0 and "tiny" in listing.stdout


def test_finished_sweep_is_not_retrained_and_fresh_makes_a_new_one(tmp_path, tiny):
    assert grokterm("run", str(tiny), "--scale", "quick", cwd=tmp_path).returncode == 0
    again = grokterm("run", str(tiny), "--scale", "quick", cwd=tmp_path)
    assert "resuming sweep 1: 2 of 2 runs finished" in again.stdout
    # What is trained decides the sweep, not the wording around it.
    tiny.write_text(tiny.read_text().replace("Small runs for tests.", "Edited."))
    edited = grokterm("run", str(tiny), "--scale", "quick", cwd=tmp_path)
    assert "resuming sweep 1: 2 of 2 runs finished" in edited.stdout, edited.stdout
    fresh = grokterm("run", str(tiny), "--scale", "quick", "--fresh", cwd=tmp_path)
    assert "sweep 2: tiny (quick)" in fresh.stdout
    store = Store.reader(tmp_path / "runs.db")
    assert [c.runs for c in store.sweeps()] == [2, 2]


def test_dry_run_prints_the_plan_and_touches_nothing(tmp_path, tiny):
    result = grokterm(
        "run", str(tiny), "--dry-run", "--workers", "2", "--device", "cpu", cwd=tmp_path
    )
    assert result.returncode == 0
    assert "tiny (paper): 4 runs in 4 cohorts, 800 run-steps" in result.stdout
    assert "cohort 4: task=add d=16 layers=1 steps=200, 1 runs" in result.stdout
    assert "n_train=120 seed=1" not in result.stdout  # runs only with --verbose
    assert "estimated wall time on 2 CPU cores: 0:00:0" in result.stdout  # 800 tiny steps
    assert not (tmp_path / "runs.db").exists()
    verbose = grokterm("run", str(tiny), "--dry-run", "--verbose", cwd=tmp_path)
    assert "    n_train=120 seed=1" in verbose.stdout
    assert not (tmp_path / "runs.db").exists()


def test_diverged_run_is_marked_and_the_rest_finish(tmp_path):
    from conftest import TINY, write_preset

    preset = write_preset(tmp_path, TINY.replace("[grid]\n", "[grid]\nlr = [1e-3, 1e30]\n"))
    result = grokterm("run", str(preset), "--workers", "1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    runs = Store(tmp_path / "runs.db").runs(1)
    status = {r.key: r.status for r in runs}
    assert sum(s == "diverged" for s in status.values()) == 4
    assert all(s == "done" for k, s in status.items() if "lr=0.001" in k)


def test_export_and_ls_errors_are_one_line(tmp_path):
    result = grokterm("export", "--csv", "x.csv", cwd=tmp_path)
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == "grokterm: runs.db: no such database (run a preset first, or pass --db)"
    )
    assert not (tmp_path / "runs.db").exists()


def test_estimate_lays_cohorts_on_workers_and_pads_to_the_largest_run():
    from grokterm.config import RunConfig
    from grokterm.planning import estimate_seconds
    from grokterm.presets import RunSpec

    def spec(n, d=64):
        return RunSpec(f"n={n} d={d}", {}, RunConfig(n_train=n, d=d, steps=1000))

    big, small = [spec(3000)], [spec(1000, d=8)]
    alone = estimate_seconds([big], 1)
    # One worker per cohort: the big cohort alone sets the wall time, not half the sum.
    assert estimate_seconds([big, small], 2) == alone
    assert estimate_seconds([big, small], 1) > alone
    # A cohort trains every run at its largest training set.
    assert estimate_seconds([[spec(3000), spec(1000)]], 1) == 2 * alone


def test_cpu_plan_balances_workers_and_gpu_plan_batches():
    from grokterm.config import RunConfig
    from grokterm.planning import estimate_seconds, plan
    from grokterm.presets import RunSpec

    # Fig 3 quick's shape: three model sizes (no shared program) of four runs each.
    specs = [
        RunSpec(f"d={d} n={n}", {}, RunConfig(d=d, n_train=n, steps=1000))
        for d in (32, 48, 64)
        for n in (2500, 3000, 3500, 4000)
    ]
    by_size = plan(specs, 2, "cpu")
    # Three cohorts of four would leave one core idle for a third of the sweep.
    assert estimate_seconds(by_size, 2) < estimate_seconds(plan(specs, 2, "cpu", 4), 2)
    assert sorted(s.key for c in by_size for s in c) == sorted(s.key for s in specs)
    assert [len(c) for c in plan(specs, 2, "cpu", 4)] == [4, 4, 4]  # asked for, kept
    assert [len(c) for c in plan(specs, 2, "cuda")] == [4, 4, 4]  # one program per d
    # Workers take cohorts in order: longest first, so short ones fill the gaps at the end.
    costs = [estimate_seconds([c], 1) for c in by_size]
    assert costs == sorted(costs, reverse=True)


def test_gpu_plan_keeps_each_cohort_within_a_workers_memory():
    from grokterm.devices import GPU_MEMORY_SHARE
    from grokterm.planning import cohort_bytes, memory_warnings, plan
    from grokterm.presets import load_preset

    # Fig 8 at paper scale: all 12 runs of the 8-layer d = 1024 rung share one program,
    # about 28 GiB each; as one cohort they would need far more than an 80 GB GPU.
    specs = load_preset("presets/fig8.toml").expand()
    memory = int(80e9 * GPU_MEMORY_SHARE)
    assert max(map(cohort_bytes, plan(specs, 1, "cuda"))) > 4 * memory
    cohorts = plan(specs, 1, "cuda", memory=memory)
    assert all(cohort_bytes(c) <= memory for c in cohorts)
    assert sorted(s.key for c in cohorts for s in c) == sorted(s.key for s in specs)
    # Small models still batch: fig 8's 1-layer d = 64 runs stay in large cohorts.
    assert max(len(c) for c in cohorts) == 15
    # A run too big for a worker gets a cohort of its own, with a warning.
    alone = plan(specs, 1, "cuda", memory=int(24e9 * GPU_MEMORY_SHARE))
    warnings = memory_warnings(alone, int(24e9 * GPU_MEMORY_SHARE))
    assert len(warnings) == 1  # one line for the 8-layer d = 1024 runs: 3 seeds x 4 n_mem
    assert warnings[0].startswith("warning: 12 runs need more memory than the 19.0 GiB a "
                                  "worker has; the largest, n_mem=6000 n_layers=8 d=1024 seed=")  # fmt: skip


def test_workers_share_a_gpus_memory(monkeypatch):
    import pytest

    from grokterm import devices

    monkeypatch.setattr(devices, "gpu_memory", lambda: [80 * 10**9, 40 * 10**9])
    share = devices.GPU_MEMORY_SHARE
    one_each = devices.worker_slots("auto", None)
    assert [(s.device, s.memory) for s in one_each] == [
        ("cuda:0", int(80e9 * share)), ("cuda:1", int(40e9 * share))
    ]  # fmt: skip
    two_on_1 = devices.worker_slots("cuda:1", 2)
    assert [(s.device, s.memory) for s in two_on_1] == [("cuda:1", int(40e9 * share) // 2)] * 2
    machine = devices.machine_memory()
    assert devices.worker_slots("cpu", 2)[0].memory == int(machine * devices.CPU_MEMORY_SHARE) // 2
    for bad in ("cuda:2", "cuda:x", "gpu"):
        with pytest.raises(ValueError, match="expected"):
            devices.worker_slots(bad, None)
    monkeypatch.setattr(devices, "gpu_memory", lambda: [])
    with pytest.raises(ValueError, match="no CUDA GPU is visible"):
        devices.worker_slots("cuda", None)
    preview = devices.worker_slots("cuda", None, preview=True)  # a dry run's GPU plan
    assert [(s.device, s.memory) for s in preview] == [("cuda:0", int(80 * 2**30 * share))]


def test_gpu_estimate_comes_from_a_measured_step_model_or_says_there_is_none():
    from grokterm.config import RunConfig
    from grokterm.planning import GPU_STEP, GPU_STEP_SHAPE, gpu_estimate_seconds
    from grokterm.presets import RunSpec

    def spec(**c):
        return RunSpec("x", {}, RunConfig(**(GPU_STEP_SHAPE.to_dict() | {"steps": 1000} | c)))

    if GPU_STEP is None:
        assert gpu_estimate_seconds([[spec()]], 1) is None
    model = (0.002, 0.001)  # 2 ms a step and 1 ms per run of the model's shape
    assert gpu_estimate_seconds([[spec(), spec()]], 1, model) == 1000 * (0.002 + 2 * 0.001)
    # a run of half the examples is half the work; two GPUs take a cohort each
    half = spec(n_train=GPU_STEP_SHAPE.n_train // 2)
    assert gpu_estimate_seconds([[half]], 1, model) == 1000 * (0.002 + 0.0005)
    assert gpu_estimate_seconds([[spec()], [spec()]], 2, model) == 1000 * 0.003


def test_run_with_the_compiled_engine_records_it(tmp_path, tiny):
    result = grokterm("run", str(tiny), "--workers", "1", "--cohort-size", "4", "--engine",
                      "compiled", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    store = Store.reader(tmp_path / "runs.db")
    runs = store.runs(1)
    assert [r.status for r in runs] == ["done"] * 4 and all(r.label in LABELS for r in runs)
    ((machine, _),) = store.machines(1).items()
    assert json.loads(machine)["engine"] == "compiled"
    (log,) = (tmp_path / "runs.db.logs").glob("sweep-1-worker-*.log")
    assert "cohort 1: compiled engine" in log.read_text()


def test_an_engine_the_device_cannot_run_is_one_line(tmp_path, tiny):
    result = grokterm("run", str(tiny), "--engine", "graphs", "--device", "cpu", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == (
        "grokterm: --engine: graphs captures CUDA graphs; it needs a GPU (--device cuda)\n"
    )
    assert not (tmp_path / "runs.db").exists()
    result = grokterm("run", str(tiny), "--precision", "tf32", cwd=tmp_path)
    assert result.returncode == 2 and result.stderr == (
        "grokterm: --precision: tf32 is a GPU's matmul mode; it needs --device cuda\n"
    )
    result = grokterm("run", str(tiny), "--engine", "fast", cwd=tmp_path)
    assert result.returncode == 2 and "--engine: invalid choice: 'fast'" in result.stderr
