"""runs.db under several writer processes, and idempotent metric writes."""

import subprocess
import sys
import textwrap
import time

from grokterm.planning import plan_cohorts
from grokterm.presets import parse_preset
from grokterm.records import MetricPoint
from grokterm.store import Store

PRESET = {"name": "c", "title": "concurrency", "run": {"p": 17, "d": 8, "steps": 10},
          "grid": {"n_train": [50, 60, 70, 80]}, "seeds": 1}  # fmt: skip

WRITER = textwrap.dedent("""
    import sys
    from grokterm.store import Store
    db, sweep = sys.argv[1], int(sys.argv[2])
    store = Store(db)
    worker = store.register_worker(sweep, "cpu")
    from grokterm.records import MetricPoint
    job = store.claim_cohort(sweep, worker, "cpu", lease_s=600)
    run_id = job.runs[0].id
    for step in range(300):
        values = {"train_loss": 1.0, "train_acc": 0.5, "val_loss": 2.0, "val_acc": 0.1,
                  "norm": 3.0, "x": step}
        store.write_progress(job.cohort_id, worker, step, [MetricPoint(run_id, step, values)])
    store.finish_cohort(job.cohort_id, worker)
""")


def make_sweep(path) -> tuple[Store, int]:
    store = Store(path)
    preset = parse_preset(PRESET)
    sweep_id = store.open_sweep(preset, "paper", plan_cohorts(preset.expand(), 4, 1), fresh=True)[
        0
    ].id
    return store, sweep_id


def test_several_writers_while_a_reader_polls(tmp_path):
    store, sweep_id = make_sweep(tmp_path / "runs.db")
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(store.path), str(sweep_id)],
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]  # fmt: skip
    polls, last = 0, 0
    run_ids = [r.id for r in store.runs(sweep_id)]
    while any(p.poll() is None for p in procs):
        points = [p for ps in store.run_points(run_ids, since=last).values() for p in ps]
        last = max([last, *(p.rowid for p in points)])
        store.progress(sweep_id)
        polls += 1
        time.sleep(0.01)
    errors = [p.stderr.read() for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, errors
    assert polls > 5
    points = store.points(sweep_id)
    assert len(points) == 4 * 300
    assert {(p.run_id, p.step) for p in points} == {
        (r.id, s) for r in store.runs(sweep_id) for s in range(300)
    }
    assert [p.values["x"] for p in points[:3]] == [0, 1, 2]  # a further series, kept
    assert store.sweep_finished(sweep_id)


def test_metric_writes_are_idempotent_on_run_and_step(tmp_path):
    store, sweep_id = make_sweep(tmp_path / "runs.db")
    worker = store.register_worker(sweep_id, "cpu")
    job = store.claim_cohort(sweep_id, worker, "cpu", lease_s=60)
    values = {"train_loss": 1.0, "train_acc": 0.5, "val_loss": None, "val_acc": None, "norm": 2.0}
    run_id = job.runs[0].id
    store.write_progress(job.cohort_id, worker, 5, [MetricPoint(run_id, 5, values)])
    again = MetricPoint(run_id, 5, values | {"train_acc": 0.75})
    store.write_progress(job.cohort_id, worker, 5, [again])
    points = store.points(sweep_id)
    assert len(points) == 1 and points[0].get("train_acc") == 0.75


def test_lapsed_cohort_is_taken_over_and_old_owner_writes_nothing(tmp_path):
    import pytest

    from grokterm.store import LostCohort

    store, sweep_id = make_sweep(tmp_path / "runs.db")
    first = store.register_worker(sweep_id, "cpu")
    claimed = [store.claim_cohort(sweep_id, first, "cpu", lease_s=60) for _ in range(4)]
    second = store.register_worker(sweep_id, "cpu")
    assert store.claim_cohort(sweep_id, second, "cpu", lease_s=60) is None
    taken = store.claim_cohort(sweep_id, second, "cpu", lease_s=-1)  # every lease has lapsed
    assert taken.cohort_id == claimed[0].cohort_id
    point = MetricPoint(taken.runs[0].id, 1, {"train_acc": 0.5, "norm": 1.0})
    with pytest.raises(LostCohort):
        store.write_progress(taken.cohort_id, first, 1, [point])
    assert store.points(sweep_id) == []


def test_workers_claim_the_longest_cohort_first_and_runs_keep_the_preset_order(tmp_path):
    store, sweep_id = make_sweep(tmp_path / "runs.db")  # n_train 50..80, one run a cohort
    assert [r.key for r in store.runs(sweep_id)] == [
        f"n_train={n} seed=0" for n in (50, 60, 70, 80)
    ]
    worker = store.register_worker(sweep_id, "cpu")
    job = store.claim_cohort(sweep_id, worker, "cpu", lease_s=600)
    assert [r.key for r in job.runs] == ["n_train=80 seed=0"]  # the largest training set


def test_a_cohort_in_a_step_longer_than_the_lease_is_not_taken_over(tmp_path, monkeypatch):
    # A worker beats from a thread while its main thread trains, so a slow step (fig 8's
    # deep models take minutes on a CPU) keeps the cohort; once the beats stop (the
    # worker is killed), the cohort is taken over as before.
    from grokterm import worker

    monkeypatch.setattr(worker, "FLUSH_S", 0.05)
    lease = 0.5
    store, sweep_id = make_sweep(tmp_path / "runs.db")
    first, killed = (store.register_worker(sweep_id, "cpu") for _ in range(2))
    mine = store.claim_cohort(sweep_id, first, "cpu", lease_s=60)
    others = [store.claim_cohort(sweep_id, killed, "cpu", lease_s=60) for _ in range(3)]
    second = store.register_worker(sweep_id, "cpu")
    with worker.beating(lambda: Store(store.path), first):
        time.sleep(3 * lease)  # a long step: no progress written
        taken = iter(lambda: store.claim_cohort(sweep_id, second, "cpu", lease_s=lease), None)
        assert sorted(c.cohort_id for c in taken) == sorted(c.cohort_id for c in others)
    time.sleep(2 * lease)
    assert store.claim_cohort(sweep_id, second, "cpu", lease_s=lease).cohort_id == mine.cohort_id


def test_a_killed_worker_is_marked_lost_and_a_waiting_one_stays_running(tmp_path, monkeypatch):
    # A worker killed outright (SIGKILL, a reboot) never writes its exit, so without this
    # a resumed sweep listed it as running forever. A worker beats for as long as it
    # lives, so one that waits for work (asking for a cohort every POLL_S) is not lost.
    from grokterm import worker

    monkeypatch.setattr(worker, "FLUSH_S", 0.05)
    lease = 0.3
    store, sweep_id = make_sweep(tmp_path / "runs.db")
    killed = store.register_worker(sweep_id, "cpu")
    for _ in range(4):
        store.claim_cohort(sweep_id, killed, "cpu", lease_s=60)  # the sweep's 4 cohorts
    waiting = store.register_worker(sweep_id, "cpu")
    resumed = store.register_worker(sweep_id, "cpu")
    with worker.beating(lambda: Store(store.path), waiting):
        for _ in range(4):
            time.sleep(lease / 2)
            assert store.claim_cohort(sweep_id, waiting, "cpu", lease_s=60) is None
        status = {w.id: (w.status, w.cohort_id) for w in store.workers(sweep_id)}
        assert status[killed][0] == "running"
        store.claim_cohort(sweep_id, resumed, "cpu", lease_s=lease)
        status = {w.id: (w.status, w.cohort_id) for w in store.workers(sweep_id)}
    assert status[killed] == ("lost", None)
    assert status[waiting][0] == status[resumed][0] == "running"
