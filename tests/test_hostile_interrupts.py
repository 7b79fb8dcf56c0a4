"""Interrupted and damaged work resumes or stops cleanly, with no traceback: a truncated
checkpoint restarts its cohort while the others train, a stop from the app holds under
`grokterm run`, a second Ctrl-C while workers stop and a Ctrl-C in a long dry run are
one line each. (The rest of the hostile cases are in test_hostile.py.)"""

import signal
import time
from contextlib import closing
from pathlib import Path

import pytest
from conftest import TINY, grokterm, popen_grokterm, write_preset
from test_faults import started, wait_for

from grokterm import sweeps
from grokterm.store import Store

# -- 3. an unreadable checkpoint -------------------------------------------------------


def test_a_truncated_checkpoint_restarts_its_cohort_and_the_others_train(tmp_path):
    import torch

    from grokterm.experiment.trainer import Cohort

    preset = write_preset(tmp_path)
    straight = tmp_path / "straight"
    straight.mkdir()
    assert grokterm("run", str(preset), "--db", "straight/runs.db", cwd=tmp_path).returncode == 0
    with closing(Store.reader(straight / "runs.db")) as store:
        configs = [r.config for r in store.runs(1) if r.cohort_id == 1]
    saved = tmp_path / "state.pt"
    torch.save(Cohort(configs).state_dict(), saved)
    planted = tmp_path / "runs.db.checkpoints" / "cohort-1.pt"
    planted.parent.mkdir()
    planted.write_bytes(saved.read_bytes()[: saved.stat().st_size // 2])  # a disk filled mid-write

    result = grokterm("run", str(preset), "--workers", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    with closing(Store.reader(tmp_path / "runs.db")) as store:
        cohorts = store.cohorts(1)
        assert {c.status for c in cohorts} == {"done"}  # every cohort trained
        assert "checkpoint not loaded" in cohorts[0].error  # the error recorded
        got = {(r.key, p.step): p.values for r in store.runs(1) for p in store.run_points([r.id])[r.id]}  # fmt: skip
    with closing(Store.reader(straight / "runs.db")) as store:
        want = {(r.key, p.step): p.values for r in store.runs(1) for p in store.run_points([r.id])[r.id]}  # fmt: skip
    assert got == want  # trained from its start
    assert (tmp_path / "runs.db.checkpoints" / "cohort-1.pt.bad").exists()


# -- 4 and 5. stops and interrupts -------------------------------------------------------

SLOW = TINY.replace("steps = 200", "steps = 3000").replace("seeds = [0, 1]", "seeds = [0]")


def _training(db: Path, workers: int = 1) -> bool:
    """At least this many workers are training a cohort of sweep 1. Read only once the
    sweep is stored: the file exists before its schema does (CI read it in between)."""
    if not started(db.parent):
        return False
    with closing(Store.reader(db)) as store:
        return sum(bool(w.cohort_id and w.step) for w in store.workers(1)) >= workers


def test_a_stop_from_the_app_stays_stopped_under_grokterm_run(tmp_path):
    preset = write_preset(tmp_path, SLOW)
    db = tmp_path / "runs.db"
    proc = popen_grokterm("run", str(preset), "--workers", "2", cwd=tmp_path)
    wait_for(lambda: _training(db, workers=2))  # a worker still starting would not be asked
    with closing(Store(db)) as store:
        assert sweeps.stop(store, 1) == 2  # what the app's `x` does
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    assert "asked to stop" in out and "Traceback" not in out
    with closing(Store.reader(db)) as store:
        workers = store.workers(1)
        assert {w.status for w in workers} == {"stopped"}  # none was started again
        assert len(workers) == 2
        assert not store.sweep_finished(1)
    resumed = grokterm("run", str(preset), "--workers", "2", cwd=tmp_path)
    assert resumed.returncode == 0 and "resuming sweep 1" in resumed.stdout


def test_a_second_ctrl_c_while_workers_stop_is_not_a_traceback(tmp_path):
    preset = write_preset(tmp_path, SLOW)
    db = tmp_path / "runs.db"
    proc = popen_grokterm("run", str(preset), "--workers", "2", cwd=tmp_path)
    wait_for(lambda: _training(db))
    proc.send_signal(signal.SIGINT)
    time.sleep(0.2)  # it is waiting for its workers now
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert "Traceback" not in out and "Run the same command again to resume" in out

    def settled():
        with closing(Store.reader(db)) as store:
            return all(w.status != "running" for w in store.workers(1))

    wait_for(settled)  # the workers saved their state in the background and stopped
    resumed = grokterm("run", str(preset), "--workers", "2", cwd=tmp_path)
    assert resumed.returncode == 0 and "resuming sweep 1" in resumed.stdout


def test_ctrl_c_during_a_long_dry_run_is_one_line(tmp_path):
    axes = {
        "n_train": range(20, 120),
        "lr": [i / 1e4 for i in range(1, 101)],
        "d": [8, 16, 24, 32, 40, 48, 56, 64, 72, 80],
    }
    grid = "\n".join(f"{k} = [{', '.join(map(str, v))}]" for k, v in axes.items())
    preset = write_preset(tmp_path, f'name = "big"\ntitle = "100,000 runs"\n[run]\np = 17\n[grid]\n{grid}\n')  # fmt: skip
    proc = popen_grokterm("run", str(preset), "--dry-run", cwd=tmp_path)
    time.sleep(2.5)  # past the imports, inside the planning
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    if proc.returncode == 0:
        pytest.skip("the dry run finished before the interrupt")
    assert proc.returncode == 130 and out.strip().splitlines()[-1] == "grokterm: interrupted", out
    assert "Traceback" not in out
