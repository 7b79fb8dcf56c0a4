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
    assert "precision: tf32 is a GPU's matmul mode; measured on a GPU only" in lines
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
    assert f"saved the step model to {tmp_path / 'model.json'}" in text


def test_the_step_model_is_fitted_to_the_scan():
    from grokterm.gpu_check import ScanPoint, step_model

    points = [ScanPoint(r, "eager", r / (0.002 + 1e-4 * r), 0.002 + 1e-4 * r) for r in (1, 4, 16)]
    points += [ScanPoint(r, "graphs", r / (0.001 + 1e-4 * r), 0.001 + 1e-4 * r) for r in (1, 4, 16)]
    a, b = step_model(points)  # the best engine at each size
    assert a == pytest.approx(0.001) and b == pytest.approx(1e-4)


def test_bench_rejects_cuda_without_gpu(capsys):
    import torch

    if torch.cuda.is_available():
        return
    assert main(["bench", "--device", "cuda", "--steps", "1"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err
