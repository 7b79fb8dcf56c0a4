"""`grokterm bench` and the CLI's start-up."""

import re
import subprocess
import sys

import pytest

from grokterm.cli import main


def test_help_does_not_import_torch():
    code = "import sys; from grokterm.cli import main; main(['--help'])"
    out = subprocess.run([sys.executable, "-c", code + "\n"], capture_output=True, text=True)
    code = "import sys, grokterm.cli; print('torch' in sys.modules)"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "bench" in out.stdout
    assert loaded.stdout.strip() == "False"


def test_bench_prints_a_line_per_engine_with_its_ratio(capsys):
    """The reference, then each engine the device runs, each with its ratio to the
    reference; engines beside eager also against eager, with their compile time."""
    # the shapes of the GPU check's tiny bench case below: compiled once for both
    assert main(["bench", "--d", "8", "--n", "200", "--runs", "2", "--steps", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("grokterm bench on cpu")
    cases = lines[1:]
    assert len(cases) == 3  # a head and two engines (graphs needs CUDA) per case
    for d, (head, eager, compiled) in zip((8,), zip(*[iter(cases)] * 3)):
        assert head.startswith(f"d={d} ")
        assert re.search(r"reference +\d+\.\d run-steps/s \(timed on 2 runs\)$", head)
        assert re.fullmatch(r"  eager +\d+\.\d run-steps/s  ratio +\d+\.\d\dx", eager)
        assert re.fullmatch(
            r"  compiled +\d+\.\d run-steps/s  ratio +\d+\.\d\dx  "
            r"\(\d+\.\d\dx eager; first step \d+\.\d s\)",
            compiled,
        )


def test_bench_times_only_the_engines_asked_for(capsys):
    assert main(["bench", "--d", "8", "--n", "100", "--runs", "1", "--steps", "1",
                 "--engine", "eager"]) == 0  # fmt: skip
    cases = capsys.readouterr().out.strip().splitlines()[1:]
    assert len(cases) == 2 and cases[1].lstrip().startswith("eager")


def test_the_gpu_check_on_a_cpu_only_machine_is_one_line_and_exit_2(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is here: the check would run")
    assert main(["bench", "--check"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert captured.err.startswith(
        "grokterm: bench --check: proves the GPU path and needs a CUDA GPU"
    )


def test_the_gpu_check_runs_every_part_at_a_tiny_scale_on_the_cpu(tmp_path):
    """The same code a GPU runs, on the CPU and tiny: every part prints its numbers and
    every bound holds (memory is a GPU's only), and the step model it fits is saved for
    this machine's dry runs."""
    from grokterm import gpu_model
    from grokterm.gpu_check import TINY, run_check

    lines: list[str] = []
    code = run_check("cpu", TINY, lines.append, save_to=tmp_path / "model.json")
    text = "\n".join(lines)
    assert code == 0, text
    assert lines[0].startswith("device cpu (")
    for engine in ("eager", "compiled"):
        line = next(x for x in lines if x.startswith(f"exact {engine} "))
        assert "resume bit-for-bit: yes" in line
        f64 = float(re.search(r"float64 max \|diff\| (\S+)", line).group(1))
        assert f64 <= 1e-9
    assert re.search(r"^  R=2 +reference +\d+\.\d +eager +\d+\.\d +compiled", text, re.M)
    assert "memory: peak GPU memory is measured on a GPU only" in lines
    for seed in range(4):  # on a CPU, TF32's rounding emulated; float64 the control
        assert re.search(rf"^precision seed {seed}: validation 0.9 at step \S+ \(float64\) / "
                         r"\S+ \(float32\) / \S+ \(tf32 emulated\); final [\d.]+ / [\d.]+ / [\d.]+; "
                         r"largest \|diff\| from float32: float64 [\d.]+, tf32 emulated [\d.]+$",
                         text, re.M)  # fmt: skip
    assert re.search(r"^precision: tf32 emulated moved the step validation reaches 0.9 by .* "
                     r"from float32; float64 moved it by .* \(the control\)$", text, re.M)  # fmt: skip
    assert re.search(r"^planner: GPU_STEP = \(\S+, \S+\) .* saturate at R=[12]$", text, re.M)
    assert re.search(
        r"^projected fig6 at paper scale on one cpu: 660 runs in 15 cohorts of up "
        r"to 44, about [\d.]+ min$",
        text,
        re.M,
    )  # fmt: skip  (44 runs a model shape)
    assert lines[-1].endswith("every bound held")
    saved = gpu_model.load(tmp_path / "model.json")
    fixed, per_run = map(float, re.search(r"GPU_STEP = \((\S+), (\S+)\)", text).groups())
    assert saved.step == (pytest.approx(fixed, rel=1e-2), pytest.approx(per_run, rel=1e-2))
    assert saved.saturates in TINY.scan and saved.device == "cpu"
    assert f"auto trains with {saved.engine} here (the fastest there of the exact engines)" in text
    assert saved.engine in ("eager", "compiled") and saved.memory is None  # no GPU memory
    assert f"saved the step model to {tmp_path / 'model.json'}" in text


def test_the_step_model_is_fitted_to_the_scan():
    from grokterm.gpu_model import ScanPoint, step_model

    points = [ScanPoint(r, "eager", r / (0.002 + 1e-4 * r), 0.002 + 1e-4 * r) for r in (1, 4, 16)]
    points += [ScanPoint(r, "graphs", r / (0.001 + 1e-4 * r), 0.001 + 1e-4 * r) for r in (1, 4, 16)]
    a, b = step_model(points)  # the best engine at each size
    assert a == pytest.approx(0.001) and b == pytest.approx(1e-4)


def test_auto_is_saved_as_the_fastest_exact_engine_where_rates_saturate(monkeypatch):
    """graphs is fastest but was off the reference: compiled, the fastest exact engine
    at the size where rates saturate (R=16), is what `auto` trains with on this GPU;
    the memory ratio saved is the largest measured."""
    from grokterm import gpu_check
    from grokterm.gpu_model import ScanPoint

    rates = {"eager": (100, 400, 800, 810), "compiled": (200, 800, 1600, 1620),
             "graphs": (400, 1600, 3200, 3240)}  # fmt: skip
    scan = [ScanPoint(r, e, rate, r / rate) for e, rs in rates.items()
            for r, rate in zip((1, 4, 16, 64), rs)]  # fmt: skip
    monkeypatch.setattr(gpu_check, "SCANNED", scan)
    monkeypatch.setattr(gpu_check, "EXACT", ["eager", "compiled"])
    monkeypatch.setattr(gpu_check, "PEAKS", [0.8, 1.2, 1.05])
    model = gpu_check.measured_model("cpu", gpu_check.TINY)
    assert (model.saturates, model.engine, model.memory) == (16, "compiled", 1.2)
    monkeypatch.setattr(gpu_check, "EXACT", [])
    assert gpu_check.measured_model("cpu", gpu_check.TINY).engine == "eager"  # none exact


def test_bench_rejects_cuda_without_gpu(capsys):
    import torch

    if torch.cuda.is_available():
        return
    assert main(["bench", "--device", "cuda", "--steps", "1"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err
