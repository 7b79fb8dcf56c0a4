"""A cohort's flushes and checkpoints are written by a reporter thread: in order, while
training goes on, and a refused write (LostCohort) ends the cohort with nothing more
written."""

import threading
import time
from contextlib import closing

import pytest
from conftest import TINY, write_preset

from grokterm import reporter, sweeps, worker
from grokterm.experiment.trainer import Cohort
from grokterm.presets import load_preset
from grokterm.reporter import Reporter
from grokterm.store import LostCohort, Store


class Recorder:
    """A sink that records the writes made on it, and on which thread."""

    def __init__(self, fail_at: int | None = None):
        self.calls: list[tuple[str, int]] = []
        self.threads: set[str] = set()
        self.closed = False
        self.fail_at = fail_at

    def write(self, i: int) -> None:
        self.threads.add(threading.current_thread().name)
        if i == self.fail_at:
            raise OSError(f"disk full at {i}")
        self.calls.append(("write", i))

    def close(self) -> None:
        self.closed = True


def test_writes_are_made_in_order_on_the_reporters_thread():
    sink = Recorder()
    reporter = Reporter(lambda: sink)
    for i in range(20):
        reporter.submit(lambda s, i=i: s.write(i))
    reporter.wait()
    assert sink.calls == [("write", i) for i in range(20)]
    assert sink.threads == {"reporter"}
    reporter.close()
    assert sink.closed


def test_a_failed_write_comes_back_and_nothing_after_it_is_written():
    sink = Recorder(fail_at=3)
    reporter = Reporter(lambda: sink)
    with pytest.raises(OSError, match="disk full at 3"):
        for i in range(10):
            reporter.submit(lambda s, i=i: s.write(i))
        reporter.wait()
    with pytest.raises(OSError, match="disk full at 3"):
        reporter.check()
    reporter.close()
    assert sink.calls == [("write", i) for i in range(3)]


def test_closing_drops_the_queued_writes_after_the_one_in_progress():
    sink, started, release = Recorder(), threading.Event(), threading.Event()

    def slow(s):
        started.set()
        release.wait(30)
        s.write(0)

    reporter = Reporter(lambda: sink)
    reporter.submit(slow)
    started.wait(30)
    reporter.submit(lambda s: s.write(1))

    def release_once_dropped() -> None:  # the slow write ends only after close's drop
        while any(w is not None for w in list(reporter._writes.queue)):  # None: close's stop
            time.sleep(0.001)
        release.set()

    threading.Thread(target=release_once_dropped).start()
    reporter.close()  # waits for the write in progress, drops the queued one
    assert sink.calls == [("write", 0)] and sink.closed


def test_a_sink_that_cannot_open_comes_back_as_the_error():
    def cannot():
        raise OSError("runs.db: cannot be opened")

    reporter = Reporter(cannot)
    with pytest.raises(OSError, match="cannot be opened"):  # at the hand-over or the wait
        reporter.submit(lambda s: s.write(0))
        reporter.wait()
    reporter.close()


def new_sweep(directory):
    plan = sweeps.plan_sweep(load_preset(write_preset(directory, TINY)), "paper", "cpu", 1)
    store = Store(directory / "runs.db")
    sweep, _ = sweeps.open_sweep(store, plan)
    return store, sweep.id


def test_training_goes_on_while_a_flush_is_written(tmp_path, monkeypatch):
    """The reporter's first write waits until the cohort has trained 10 more steps (or
    to its end), which it can only do if the training thread is not the one writing."""
    monkeypatch.setattr(worker, "FLUSH_S", 0.05)
    monkeypatch.setattr(reporter, "DEPTH", 10_000)  # however slow a step, no hand-over waits
    store, sweep_id = new_sweep(tmp_path)
    trained: list[int] = []
    update = Cohort.update
    monkeypatch.setattr(Cohort, "update", lambda self: (update(self), trained.append(self.step)))
    seen: list[tuple[int, int]] = []

    class Slow(Store):
        def write_progress(self, cohort_id, worker_id, step, *args):
            if not seen:
                deadline = time.monotonic() + 60
                while len(trained) < min(step + 10, 200) and time.monotonic() < deadline:
                    time.sleep(0.005)
                seen.append((step, len(trained)))
            return super().write_progress(cohort_id, worker_id, step, *args)

    with closing(store):
        w = worker.Worker(store, lambda: Slow(store.path), sweep_id, "cpu", engine="eager")
        w.work()
        ((step, steps_by_then),) = seen
        assert steps_by_then >= min(step + 10, 200)  # trained on while the flush was written
        runs = store.runs(sweep_id)
        assert {r.status for r in runs} == {"done"} and all(r.label for r in runs)
        steps = sorted({p.step for p in store.points(sweep_id)})
        assert steps == list(range(0, 201, 20))
        assert len(store.points(sweep_id)) == len(runs) * len(steps)


def test_a_refused_write_ends_the_cohort_with_nothing_more_written(tmp_path, monkeypatch):
    monkeypatch.setattr(worker, "FLUSH_S", 0.0)  # a flush at every step
    monkeypatch.setattr(worker, "CHECKPOINT_S", 0.0)  # and a checkpoint
    store, sweep_id = new_sweep(tmp_path)
    tried: list[str] = []

    class TakenOver(Store):  # another worker takes the cohort over after two writes
        def write_progress(self, *args):
            tried.append("write_progress")
            if len(tried) > 2:
                raise LostCohort("taken over")
            return super().write_progress(*args)

        def save_checkpoint(self, *args):
            tried.append("save_checkpoint")
            if len(tried) > 2:
                raise LostCohort("taken over")
            return super().save_checkpoint(*args)

    with closing(store):
        w = worker.Worker(store, lambda: TakenOver(store.path), sweep_id, "cpu", engine="eager")
        job = store.claim_cohort(sweep_id, w.id, "cpu", 60)
        cohort_job = worker.CohortJob(w, job)
        with pytest.raises(LostCohort):
            cohort_job.run()
        # points first, then state; then the refused write, and none tried after it
        assert tried == ["write_progress", "save_checkpoint", "write_progress"]
        assert cohort_job.cohort.step < 200  # training stopped, not run to its end
        cohort = next(c for c in store.cohorts(sweep_id) if c.id == job.cohort_id)
        assert cohort.status == "running"  # not finished or handed back by this worker


def test_labels_take_at_most_their_share_of_the_time_and_are_made_at_the_end(tmp_path, monkeypatch):
    """Labelling holds the GIL the training thread needs: with a label costing 10 ms a
    run and a flush at every step, most flushes write points only, labelling stays
    within LABEL_SHARE of the time, each labelling covers every run changed since the
    last, and the cohort's last write labels every run."""
    monkeypatch.setattr(worker, "FLUSH_S", 0.0)
    monkeypatch.setattr(worker, "LABEL_SHARE", 0.25)
    real = worker.dynamics
    made: list[int] = []
    spent: list[float] = []

    def slow(curve):
        start = time.perf_counter()
        time.sleep(0.01)
        made.append(curve[0].run_id)
        info = real(curve)
        spent.append(time.perf_counter() - start)
        return info

    monkeypatch.setattr(worker, "dynamics", slow)
    store, sweep_id = new_sweep(tmp_path)
    writes: list[tuple[set[int], set[int]]] = []  # runs with points, runs labelled

    class Watch(Store):
        def write_progress(self, cohort_id, worker_id, step, points, *args):
            writes.append(({p.run_id for p in points}, set(made)))
            made.clear()
            return super().write_progress(cohort_id, worker_id, step, points, *args)

    with closing(store):
        w = worker.Worker(store, lambda: Watch(store.path), sweep_id, "cpu", engine="eager")
        start = time.monotonic()
        w.work()
        wall = time.monotonic() - start
        labelled = [i for i, (_, runs) in enumerate(writes) if runs]
        assert len(labelled) < len(writes) / 2  # most flushes wrote points only
        assert sum(spent) <= 0.25 * wall + 2 * len(store.runs(sweep_id)) * max(spent)
        since: set[int] = set()
        for changed, runs in writes:
            since |= changed
            if runs:
                assert runs == since  # every run changed since the last labels
                since = set()
        assert since == set()  # the last write labelled what was left
        assert all(r.label for r in store.runs(sweep_id))
