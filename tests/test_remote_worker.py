"""The Ray backend's two halves without Ray: the remote worker trains a cohort and queues
its writes; the head's apply_calls makes them on the store. Together they store what a
local worker stores, hand a stopped cohort back with its checkpoint, and fail a cohort
that cannot train."""

import threading
import time
from contextlib import closing
from dataclasses import replace

import pytest
from conftest import TINY, write_preset

from grokterm import sweeps
from grokterm.backends.ray_pool import apply_calls
from grokterm.backends.remote import QueuedSink, RemoteWorker
from grokterm.presets import load_preset
from grokterm.store import Store
from grokterm.worker import Worker


def new_sweep(directory, text: str = TINY):
    plan = sweeps.plan_sweep(load_preset(write_preset(directory, text)), "paper", "cpu", 1)
    store = Store(directory / "runs.db")
    sweep, _ = sweeps.open_sweep(store, plan)
    return store, sweep.id


def rows(store, sweep_id):
    keys = {r.id: r.key for r in store.runs(sweep_id)}
    points = sorted(
        (keys[p.run_id], p.step, sorted(p.values.items())) for p in store.points(sweep_id)
    )
    return points, {r.key: (r.status, r.label, r.info) for r in store.runs(sweep_id)}


def train_remotely(store, sweep_id, remote, worker_id):
    """The head's part for one cohort: claim, send, apply what came back."""
    job = store.claim_cohort(sweep_id, worker_id, "cpu", 60)
    points = store.run_points([r.id for r in job.runs])
    remote.train(worker_id, job, store.load_checkpoint(job.cohort_id), points)
    calls, output = remote.drain()
    assert not apply_calls(store, calls, print)
    return job, calls, output


def test_remote_cohorts_store_what_a_local_worker_stores(tmp_path):
    (tmp_path / "local").mkdir()
    (tmp_path / "remote").mkdir()
    local, local_id = new_sweep(tmp_path / "local")
    with closing(local):
        Worker(local, lambda: Store(local.path), local_id, "cpu").work()
        expected = rows(local, local_id)

    store, sweep_id = new_sweep(tmp_path / "remote")
    remote = RemoteWorker("cpu", 1, "auto", "float32", capture=False)
    worker_id = store.register_worker(sweep_id, "cpu", node="host/12345678")
    while not store.sweep_finished(sweep_id):
        _, calls, _ = train_remotely(store, sweep_id, remote, worker_id)
        assert calls[-1][0] == "finish_cohort"
    assert rows(store, sweep_id) == expected  # every point, every label
    assert store.workers(sweep_id)[0].node == "host/12345678"


def test_a_stopped_remote_cohort_comes_back_with_a_checkpoint_and_resumes_the_same(tmp_path):
    longer = TINY.replace("steps = 200", "steps = 3000")
    results = []
    for stop in (False, True):
        (tmp_path / str(stop)).mkdir()
        store, sweep_id = new_sweep(tmp_path / str(stop), longer)
        remote = RemoteWorker("cpu", 1, "auto", "float32", capture=False)
        worker_id = store.register_worker(sweep_id, "cpu")
        if stop:  # stop() comes in on another of the actor's threads, mid-cohort
            job = store.claim_cohort(sweep_id, worker_id, "cpu", 60)
            training = threading.Thread(target=remote.train, args=(worker_id, job, None, {}))
            training.start()
            while not any(name == "write_progress" for name, _ in list(remote.sink.calls)):
                time.sleep(0.01)
            remote.stop()
            training.join()
            calls, _ = remote.drain()
            assert [name for name, _ in calls][-2:] == ["save_checkpoint", "release_cohort"]
            apply_calls(store, calls, print)
            cohort = store.cohorts(sweep_id)[0]
            assert cohort.status == "queued" and cohort.checkpoint and 0 < cohort.step < 3000
        while not store.sweep_finished(sweep_id):  # from the checkpoint, to the end
            train_remotely(store, sweep_id, remote, worker_id)
        results.append(rows(store, sweep_id))
    assert results[1] == results[0]


def test_a_cohort_that_cannot_train_is_failed_with_its_error(tmp_path):
    store, sweep_id = new_sweep(tmp_path)
    remote = RemoteWorker("cpu", 1, "auto", "float32", capture=False)
    worker_id = store.register_worker(sweep_id, "cpu")
    job = store.claim_cohort(sweep_id, worker_id, "cpu", 60)
    broken = replace(job, runs=[replace(job.runs[0], config=None)])
    remote.train(worker_id, broken, None, {})
    calls, _ = remote.drain()
    assert [name for name, _ in calls] == ["fail_cohort"]
    assert not apply_calls(store, calls, print)
    cohort = store.cohorts(sweep_id)[0]
    assert cohort.status == "queued" and cohort.attempts == 1 and "Error" in cohort.error


def test_the_queued_sink_queues_only_the_writes_a_cohort_makes():
    sink = QueuedSink({7: []}, b"state")
    assert sink.run_points([7, 8]) == {7: [], 8: []} and sink.load_checkpoint(1) == b"state"
    sink.finish_cohort(1, 2)
    assert sink.take() == [("finish_cohort", (1, 2))] and sink.take() == []
    with pytest.raises(AttributeError):
        sink.claim_cohort  # noqa: B018  (the head claims; a remote worker cannot)
