"""Interrupted work resumes: SIGKILL of a worker, Ctrl-C of `grokterm run`. The sweep
finishes with every run's curve equal to the uninterrupted one, no step missing or
duplicated."""

import os
import signal
import time
from contextlib import closing

import pytest
from conftest import grokterm, popen_grokterm, write_preset

from grokterm.series import CORE
from grokterm.store import Store

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


def read(db, what):
    """what(store), on a reader of the store opened for this one look."""
    with closing(Store.reader(db)) as store:
        return what(store)


def curves(db) -> dict:
    """Every stored metric point, by (run key, step): the five core series; and under
    "labels" each run's label with the numbers behind it."""

    def collect(store):
        sweeps = [c.sweep.id for c in store.sweeps()]
        return ([r for s in sweeps for r in store.runs(s)],
                [p for s in sweeps for p in store.points(s)])  # fmt: skip

    runs, points = read(db, collect)
    assert {r.status for r in runs} == {"done"}
    keys = {r.id: r.key for r in runs}
    out: dict = {}
    for point in points:
        entry = (keys[point.run_id], point.step)
        assert entry not in out
        out[entry] = tuple(point.get(name) for name in CORE)
    out["labels"] = {r.key: (r.label, r.info) for r in runs}  # whole curve, also across a resume
    return out


def wait_for(predicate, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out waiting")


def started(directory):
    """Whether `grokterm run` has stored its sweep and started workers (it makes their
    log folder only then), so the store can be read."""
    return (directory / "runs.db.logs").is_dir()


def checkpointed_mid_cohort(store):
    """Cohorts with a checkpoint behind them, still mid-cohort."""
    return [c for c in store.cohorts(1) if c.checkpoint is not None and 300 <= c.step <= 1000]


def victim_pid(store):
    """A worker training a cohort that has a checkpoint behind it, still mid-cohort."""
    cohorts = {c.id for c in checkpointed_mid_cohort(store)}
    return next((w.pid for w in store.workers(1) if w.cohort_id in cohorts), None)


def test_sigkill_of_a_worker_mid_cohort(tmp_path, uninterrupted):
    preset = write_preset(tmp_path, SLOW, "slow.toml")
    db = tmp_path / "runs.db"
    proc = popen_grokterm("run", str(preset), "--workers", "2", cwd=tmp_path)
    wait_for(lambda: started(tmp_path))
    os.kill(wait_for(lambda: read(db, victim_pid)), signal.SIGKILL)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert curves(db) == uninterrupted
    workers = read(db, lambda store: store.workers(1))
    assert len(workers) >= 3  # a replacement worker took the orphaned cohort over


@pytest.mark.parametrize("lose_checkpoints", [False, True])
def test_ctrl_c_then_run_again_resumes(tmp_path, uninterrupted, lose_checkpoints):
    """Also when the checkpoint files are gone (a store copied or committed without
    them): those cohorts train again from step 0, and curves and labels come out
    as if never stopped."""
    preset = write_preset(tmp_path, SLOW, "slow.toml")
    db = tmp_path / "runs.db"
    proc = popen_grokterm("run", str(preset), "--workers", "2", cwd=tmp_path)
    wait_for(lambda: started(tmp_path))
    wait_for(lambda: read(db, checkpointed_mid_cohort))
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    assert "Run the same command again to resume sweep 1" in out
    # every worker handed its cohort back after a checkpoint
    cohorts, runs = read(db, lambda store: (store.cohorts(1), store.runs(1)))
    assert [c for c in cohorts if c.status == "running"] == []
    assert [r for r in runs if r.status == "running"] == []
    steps = [c.step for c in cohorts]
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
