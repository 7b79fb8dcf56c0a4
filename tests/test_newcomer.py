"""A newcomer's first hour with the CLI: the plan is compared with the machine before
training (a warning, and a question in a terminal or a stop without --yes), a log gets
plain progress lines, and the messages say what to do."""

import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest
from conftest import FAST_ENV, TINY, grokterm, write_preset
from test_store_faults import stop_on_failure

from grokterm import sweeps
from grokterm.store import Store

ROOT = Path(__file__).resolve().parents[1]
# One run that needs far more memory than any worker has: 8 layers of d = 8192.
HUGE = 'name = "huge"\ntitle = "too big"\n[run]\np = 97\nd = 8192\nn_layers = 8\nsteps = 10\n'
# Tiny runs, but so many steps that the estimate passes a day on this machine.
LONG = 'name = "long"\ntitle = "too long"\n[run]\np = 17\nd = 8\nn_train = 100\nsteps = 100000000\n'


@pytest.fixture(autouse=True)
def no_worker_left(tmp_path):
    """LONG's workers would train for days: whatever a test leaves running is stopped."""
    yield
    db = tmp_path / "runs.db"
    if db.exists():
        with closing(Store(db)) as store:
            sweeps.stop(store, 1)


def test_a_run_beyond_a_workers_memory_warns_and_stops_without_yes(tmp_path):
    preset = write_preset(tmp_path, HUGE)
    dry = grokterm("run", str(preset), "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0
    assert re.search(r"warning: run needs more memory than the [\d.]+ GiB a worker has", dry.stdout)
    result = grokterm("run", str(preset), cwd=tmp_path)  # stdin is not a terminal
    assert result.returncode == 2
    assert "warning: run needs more memory" in result.stdout
    assert result.stderr.strip() == f"grokterm: {preset}: not started (pass --yes to train anyway)"
    assert not (tmp_path / "runs.db").exists()


def test_a_plan_past_a_day_warns_and_stops_without_yes(tmp_path):
    preset = write_preset(tmp_path, LONG)
    result = grokterm("run", str(preset), cwd=tmp_path)
    assert result.returncode == 2
    assert re.search(r"warning: estimated [\d,]+ days on \d+ CPU cores", result.stdout)
    assert "--dry-run --device cuda previews a GPU's plan" in result.stdout
    assert not (tmp_path / "runs.db").exists()


def _in_a_terminal(args: list[str], cwd: Path, answer: str) -> tuple[int, str]:
    """grokterm with a terminal for stdin and stdout, given an answer to its question."""
    main, side = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "grokterm.cli", *args], cwd=cwd,
                            stdin=side, stdout=side, stderr=side, env=os.environ | FAST_ENV,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    os.close(side)
    out, asked, stopped = b"", False, False
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if select.select([main], [], [], 0.2)[0]:
            try:
                out += os.read(main, 4096)
            except OSError:
                break
        if not asked and b"train anyway? [y/N]" in out:
            os.write(main, answer.encode() + b"\n")
            asked = True
        if asked and answer == "y" and b"runs finished" in out and not stopped:
            proc.send_signal(signal.SIGINT)  # the live view: it trains; stop it
            stopped = True
    proc.wait(60)
    os.close(main)
    return proc.returncode, out.decode(errors="replace")


def test_in_a_terminal_the_warning_asks_and_the_answer_decides(tmp_path):
    preset = write_preset(tmp_path, LONG)
    status, out = _in_a_terminal(["run", str(preset)], tmp_path, "n")
    assert status == 2 and "not started (pass --yes to train anyway)" in out, out
    assert not (tmp_path / "runs.db").exists()
    status, out = _in_a_terminal(["run", str(preset), "--workers", "1"], tmp_path, "y")
    assert status == 130 and "runs finished" in out, out  # trained until Ctrl-C
    assert (tmp_path / "runs.db").exists()


def test_yes_trains_despite_the_warning(tmp_path):
    preset = write_preset(tmp_path, LONG.replace("100000000", "100000000\neval_every = 10"))
    proc = subprocess.Popen([sys.executable, "-m", "grokterm.cli", "run", str(preset), "--yes",
                             "--workers", "1"], cwd=tmp_path, env=os.environ | FAST_ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    db = tmp_path / "runs.db"
    deadline = time.monotonic() + 300  # a loaded 2-core machine starts workers slowly
    try:
        while not (db.exists() and Store.reader(db).progress(1).run_steps_done > 0):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 130
    finally:  # never leave the supervisor (and through it a worker) training for days
        stop_on_failure(proc, [])


def test_a_log_gets_plain_progress_lines(tmp_path):
    preset = write_preset(tmp_path)
    result = grokterm("run", str(preset), cwd=tmp_path, env={"GROKTERM_PROGRESS_S": "0.3"})
    assert result.returncode == 0, result.stderr
    lines = [ln for ln in result.stdout.splitlines() if re.match(r"\d\d:\d\d:\d\d sweep 1: ", ln)]
    assert lines, result.stdout
    done = [int(re.search(r"([\d,]+)/800 run-steps", ln)[1].replace(",", "")) for ln in lines]
    assert done == sorted(done)  # work done, in run-steps, only grows
    assert all(re.search(r"\d+/4 runs finished, [\d,]+/800 run-steps \(\d+%\)", ln) for ln in lines)
    assert "\x1b[" not in result.stdout  # no terminal codes in a log


def test_progress_counts_run_steps_of_unfinished_cohorts(tmp_path):
    from synth import make_sweep

    make_sweep(tmp_path / "runs.db", [8, 32], [2600], 2, steps=1000, finish=False)
    with closing(Store.reader(tmp_path / "runs.db")) as store:
        p = store.progress(1)
        assert p.finished == 0  # no run finished, but one cohort of two runs is at step 1000
        assert p.run_steps == 4 * 1000 and p.run_steps_done == 2 * 1000
        assert [c.step for c in store.cohorts(1)] == [1000, 0]


def test_messages_point_at_what_to_do(tmp_path):
    quick = ROOT / "results" / "quick.db"
    result = grokterm("show", str(ROOT / "presets" / "fig3.toml"), "--db", str(quick), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().endswith("its 'quick' sweep is there: --scale quick")
    version = grokterm("--version", cwd=tmp_path)
    assert version.returncode == 0 and re.fullmatch(r"grokterm \S+\n", version.stdout)
    assert "examples:" in grokterm("--help", cwd=tmp_path).stdout
    missing = grokterm("show", "fig2", "--db", str(quick), cwd=tmp_path)
    assert "--sweep" not in missing.stderr  # a positional argument is not an option


def test_a_gpu_plan_can_be_previewed_without_a_gpu(tmp_path):
    preset = write_preset(tmp_path, TINY)
    result = grokterm("run", str(preset), "--dry-run", "--device", "cuda", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "workers on cuda:0" in result.stdout
    if "none is visible here" not in result.stdout:  # a GPU box: its own plan
        return
    assert "(a preview: planned for 1 GPU(s) of 80.0 GiB; none is visible here)" in result.stdout
    refused = grokterm("run", str(preset), "--device", "cuda", cwd=tmp_path)
    assert refused.returncode == 2 and "no CUDA GPU is visible" in refused.stderr
