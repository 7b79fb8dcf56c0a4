"""The store's guarantees under real faults: a worker that lost its cohort changes
nothing of it, signals reach only our own workers, launches at the same instant make
one sweep, and a checkpoint carrying code is refused without running it."""

import multiprocessing
import os
import subprocess
import sys
import textwrap
from contextlib import closing
from pathlib import Path

import pytest
import torch
from conftest import TINY, grokterm, write_preset

from grokterm import processes, sweeps
from grokterm.planning import plan_cohorts
from grokterm.presets import load_preset, parse_preset
from grokterm.records import MetricPoint
from grokterm.store import LostCohort, Store

PRESET = {"name": "g", "title": "guarantees", "run": {"p": 17, "d": 8, "steps": 10},
          "grid": {"n_train": [50, 60]}, "seeds": 1}  # fmt: skip


def taken_over(tmp_path):
    """A cohort claimed by a first worker, then (its lease lapsed) by a second."""
    store = Store(tmp_path / "runs.db")
    preset = parse_preset(PRESET)
    sweep_id = store.open_sweep(preset, "paper", plan_cohorts(preset.expand(), 2, 1), fresh=True)[
        0
    ].id
    stale, owner = store.register_worker(sweep_id, "cpu"), store.register_worker(sweep_id, "cpu")
    job = store.claim_cohort(sweep_id, stale, "cpu", lease_s=60)
    assert store.claim_cohort(sweep_id, owner, "cpu", lease_s=-1).cohort_id == job.cohort_id
    return store, sweep_id, stale, owner, job


def test_a_worker_that_lost_its_cohort_changes_nothing_of_it(tmp_path):
    store, sweep_id, stale, owner, job = taken_over(tmp_path)
    store.save_checkpoint(job.cohort_id, owner, b"the owner's state")
    point = MetricPoint(job.runs[0].id, 5, {"train_acc": 0.5, "norm": 1.0})
    with pytest.raises(LostCohort):
        store.write_progress(job.cohort_id, stale, 5, [point])
    with pytest.raises(LostCohort):
        store.save_checkpoint(job.cohort_id, stale, b"a stale state")
    with pytest.raises(LostCohort):
        store.fail_cohort(job.cohort_id, stale, "a stale error", max_attempts=1)
    store.finish_cohort(job.cohort_id, stale)
    store.release_cohort(job.cohort_id, stale)
    cohort = next(c for c in store.cohorts(sweep_id) if c.id == job.cohort_id)
    assert (cohort.status, cohort.worker_id, cohort.attempts) == ("running", owner, 0)
    assert {r.status for r in store.runs(sweep_id) if r.cohort_id == job.cohort_id} == {"running"}
    assert store.load_checkpoint(job.cohort_id) == b"the owner's state"  # not replaced, not removed
    assert store.points(sweep_id) == []
    assert not list(store.checkpoints.dir.glob("*.tmp"))  # the stale state was not left behind


def _open_at_once(db: str, preset_path: str, barrier) -> None:
    plan = sweeps.plan_sweep(load_preset(preset_path), "paper", "cpu", 1)
    barrier.wait()
    with closing(Store(db)) as store:
        sweeps.open_sweep(store, plan)


def test_launches_at_the_same_instant_make_one_sweep(tmp_path):
    preset = write_preset(tmp_path)
    fork = multiprocessing.get_context("fork")
    for trial in range(20):
        db = tmp_path / f"race-{trial}.db"
        barrier = fork.Barrier(8)
        procs = [fork.Process(target=_open_at_once, args=(str(db), str(preset), barrier))
                 for _ in range(8)]  # fmt: skip
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        assert [p.exitcode for p in procs] == [0] * 8, f"trial {trial}"
        with closing(Store.reader(db)) as store:
            listed = store.sweeps()
            assert [c.runs for c in listed] == [4], f"trial {trial}: {listed}"


def _registered(tmp_path: Path, token: str) -> subprocess.Popen:
    """A process that lists itself as a running worker of sweep 1 with this token, then
    waits (as a worker would, or as an unrelated process given a dead worker's PID)."""
    code = textwrap.dedent(f"""
        import sys, time
        from grokterm.store import Store
        from grokterm import processes
        import os
        store = Store({str(tmp_path / "runs.db")!r})
        token = {token!r} or processes.token(os.getpid())
        store.register_worker(1, "cpu", token=token)
        print("registered", flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "registered"
    return proc


def test_stop_signals_our_workers_and_leaves_a_stranger_with_a_stale_pid_alone(tmp_path):
    store = Store(tmp_path / "runs.db")
    preset = parse_preset(PRESET)
    store.open_sweep(preset, "paper", plan_cohorts(preset.expand(), 1, 2), fresh=True)
    stranger = _registered(tmp_path, "another boot:42")  # the dead worker's token, not its own
    ours = _registered(tmp_path, "")  # its own token, as a worker registers
    try:
        assert sweeps.stop(store, 1) == 1
        assert ours.wait(30) == -15  # SIGTERM
        assert stranger.poll() is None  # untouched
        status = {w.pid: w.status for w in store.workers(1)}
        assert status[stranger.pid] == "lost"  # its process is not the worker listed
        assert processes.token(stranger.pid) is not None
    finally:
        stranger.kill()
        ours.kill()


class Payload:
    """What a planted checkpoint would run when unpickled by an unsafe loader."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_carrying_code_is_refused_and_the_cohort_trains_from_the_start(tmp_path):
    straight = tmp_path / "straight"
    straight.mkdir()
    preset = write_preset(tmp_path, TINY)
    assert grokterm("run", str(preset), "--scale", "quick", "--db", str(straight / "runs.db"),
                    cwd=tmp_path).returncode == 0  # fmt: skip

    marker = tmp_path / "ran"
    planted = tmp_path / "runs.db.checkpoints" / "cohort-1.pt"
    planted.parent.mkdir()
    torch.save({"configs": Payload(marker)}, planted)
    result = grokterm("run", str(preset), "--scale", "quick", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not marker.exists()  # the planted code never ran
    assert (tmp_path / "runs.db.checkpoints" / "cohort-1.pt.bad").exists()  # kept for a look
    with closing(Store.reader(tmp_path / "runs.db")) as store:
        cohort = store.cohorts(1)[0]
        assert cohort.status == "done" and "checkpoint not loaded (UnpicklingError" in cohort.error
        got = {
            (r.key, p.step): p.values for r in store.runs(1) for p in store.run_points([r.id])[r.id]
        }
    with closing(Store.reader(straight / "runs.db")) as store:
        want = {
            (r.key, p.step): p.values for r in store.runs(1) for p in store.run_points([r.id])[r.id]
        }
    assert got == want  # trained from the start: the same curves as a run never interrupted
