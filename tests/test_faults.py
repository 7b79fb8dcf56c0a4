"""Interrupted work resumes: SIGKILL of a worker, Ctrl-C of `grokterm run`. The sweep
finishes with every run's curve equal to the uninterrupted one, no step missing or
duplicated."""

import os
import signal
import sqlite3
import time

import pytest
from conftest import grokterm, popen_grokterm, write_preset

# Long enough to interrupt mid-cohort: each cohort trains for several seconds.
SLOW = """
name = "slow"
title = "Slow enough to interrupt"
seeds = [0, 1]

[run]
p = 23
d = 32
steps = 1500
eval_every = 50

[grid]
n_train = [150, 250]
"""


def curves(db) -> dict:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT r.key, m.step, m.train_loss, m.train_acc, m.val_loss, m.val_acc, m.norm"
            " FROM metrics m JOIN runs r ON r.id = m.run_id ORDER BY r.key, m.step"
        ).fetchall()
        statuses = {s for (s,) in conn.execute("SELECT status FROM runs")}
        labels = dict(conn.execute("SELECT key, label_info FROM runs").fetchall())
    assert statuses == {"done"}
    out: dict = {}
    for key, step, *values in rows:
        assert (key, step) not in out
        out[(key, step)] = tuple(values)
    out["labels"] = labels  # from the whole curve, also across a resume
    return out


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    directory = tmp_path_factory.mktemp("straight")
    preset = write_preset(directory, SLOW, "slow.toml")
    assert grokterm("run", str(preset), "--workers", "2", cwd=directory).returncode == 0
    result = curves(directory / "runs.db")
    assert len(result) == 4 * 31 + 1
    return result


def wait_for(predicate, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out waiting")


def query(db, sql):
    try:
        with sqlite3.connect(db, timeout=30) as conn:
            return conn.execute(sql).fetchall()
    except sqlite3.OperationalError:  # table not created yet
        return []


def test_sigkill_of_a_worker_mid_cohort(tmp_path, uninterrupted):
    preset = write_preset(tmp_path, SLOW, "slow.toml")
    db = tmp_path / "runs.db"
    proc = popen_grokterm("run", str(preset), "--workers", "2", cwd=tmp_path)
    # a worker with a checkpoint behind it, still mid-cohort
    victim = wait_for(lambda: query(db, "SELECT w.pid, c.step FROM workers w JOIN cohorts c"
                                        " ON c.id = w.cohort_id WHERE c.checkpoint IS NOT NULL"
                                        " AND c.step BETWEEN 300 AND 1000 LIMIT 1"))  # fmt: skip
    os.kill(victim[0][0], signal.SIGKILL)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert curves(db) == uninterrupted
    workers = query(db, "SELECT COUNT(*) FROM workers")[0][0]
    assert workers >= 3  # a replacement worker took the orphaned cohort over


@pytest.mark.parametrize("lose_checkpoints", [False, True])
def test_ctrl_c_then_run_again_resumes(tmp_path, uninterrupted, lose_checkpoints):
    """Also when the checkpoint files are gone (a store copied or committed without
    them): those cohorts train again from step 0, and curves and labels come out
    as if never stopped."""
    preset = write_preset(tmp_path, SLOW, "slow.toml")
    db = tmp_path / "runs.db"
    proc = popen_grokterm("run", str(preset), "--workers", "2", cwd=tmp_path)
    wait_for(lambda: query(db, "SELECT 1 FROM cohorts WHERE step BETWEEN 300 AND 1000"
                               " AND checkpoint IS NOT NULL"))  # fmt: skip
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    assert "Run the same command again to resume sweep 1" in out
    # every worker handed its cohort back after a checkpoint
    assert query(db, "SELECT COUNT(*) FROM cohorts WHERE status = 'running'")[0][0] == 0
    assert query(db, "SELECT COUNT(*) FROM runs WHERE status = 'running'")[0][0] == 0
    steps = [s for (s,) in query(db, "SELECT step FROM cohorts")]
    assert any(0 < s < 1500 for s in steps)
    if lose_checkpoints:
        files = list((tmp_path / "runs.db.checkpoints").glob("*.pt"))
        assert files
        for path in files:
            path.unlink()

    result = grokterm("run", str(preset), "--workers", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "resuming sweep 1" in result.stdout
    assert curves(db) == uninterrupted
