"""`grokterm bench` and the CLI's start-up."""

import re
import subprocess
import sys

from grokterm.cli import main


def test_help_does_not_import_torch():
    code = "import sys; from grokterm.cli import main; main(['--help'])"
    out = subprocess.run([sys.executable, "-c", code + "\n"], capture_output=True, text=True)
    code = "import sys, grokterm.cli; print('torch' in sys.modules)"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "bench" in out.stdout
    assert loaded.stdout.strip() == "False"


def test_bench_prints_one_ratio_line_per_case(capsys):
    assert main(["bench", "--d", "8", "16", "--n", "300", "--runs", "2", "--steps", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("grokterm bench on cpu")
    cases = lines[1:]
    assert len(cases) == 2
    for d, line in zip((8, 16), cases):
        assert line.startswith(f"d={d} ")
        assert re.search(r"reference +\d+\.\d run-steps/s", line)
        assert re.search(r"ratio \d+\.\d\dx$", line)


def test_bench_rejects_cuda_without_gpu(capsys):
    import torch

    if torch.cuda.is_available():
        return
    assert main(["bench", "--device", "cuda", "--steps", "1"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err
