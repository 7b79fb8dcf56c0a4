"""A worker raises mid-cohort: the error is stored and shown, the cohort is retried,
the runs end failed after the last attempt, the other cohorts finish, the exit status
is non-zero. The fault is injected from a sitecustomize.py; no production code knows."""

from contextlib import closing

from conftest import grokterm, patch_on_import, write_preset

from grokterm.store import Store
from grokterm.worker import MAX_ATTEMPTS

# Two model sizes: d = 16 and d = 24 never share a cohort.
TWO_SIZES = """
name = "two-sizes"
title = "One cohort fails, the other finishes"
seeds = [0, 1]

[run]
p = 17
n_train = 100
steps = 200
eval_every = 20

[grid]
d = [16, 24]
"""

# The d = 24 cohort raises once it reaches step 40, every attempt; each attempt says in
# the worker's log which step it trains from.
FAULT = """
def patch(trainer):
    update = trainer.Cohort.update

    def faulty(self):
        if self.configs[0].d == 24:
            if not getattr(self, "probed", False):
                self.probed = True
                print(f"probe: d=24 trains from step {self.step}", flush=True)
            if self.step >= 40:
                raise RuntimeError(f"injected fault at step {self.step}")
        update(self)

    trainer.Cohort.update = faulty
"""
ERROR = "RuntimeError: injected fault at step 40"


def test_a_failing_cohort_is_retried_then_failed_and_the_rest_finish(tmp_path):
    preset = write_preset(tmp_path, TWO_SIZES, "two.toml")
    env = patch_on_import(tmp_path, "grokterm.experiment.trainer", FAULT)
    result = grokterm("run", str(preset), "--workers", "1", cwd=tmp_path, env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    failed = sorted(line for line in result.stdout.splitlines() if line.startswith("failed: "))
    assert failed == [f"failed: d=24 seed=0: {ERROR}", f"failed: d=24 seed=1: {ERROR}"]
    assert "2 runs done" in result.stdout and "2 failed" in result.stdout

    with closing(Store.reader(tmp_path / "runs.db")) as store:
        runs = {r.key: r for r in store.runs(1)}
        points = store.run_points([r.id for r in runs.values()])
        cohorts = {c.id: c for c in store.cohorts(1)}
        workers = store.workers(1)

    for seed in (0, 1):
        good, bad = runs[f"d=16 seed={seed}"], runs[f"d=24 seed={seed}"]
        assert good.status == "done" and good.error is None
        assert [p.step for p in points[good.id]] == list(range(0, 201, 20))
        assert bad.status == "failed" and bad.error == ERROR
        # Each retry trained again from step 0 or a checkpoint, re-logging its steps
        # in place: never a step twice, never one past the fault.
        steps = [p.step for p in points[bad.id]]
        assert len(steps) == len(set(steps)) and set(steps) <= {0, 20, 40}
        assert bad.step <= 40
    failing = cohorts[runs["d=24 seed=0"].cohort_id]
    assert (failing.status, failing.attempts, failing.error) == ("failed", MAX_ATTEMPTS, ERROR)
    finished = cohorts[runs["d=16 seed=0"].cohort_id]
    assert (finished.status, finished.attempts, finished.error) == ("done", 0, None)

    (worker,) = workers  # it never died: one worker did every attempt and the rest
    assert worker.status == "finished" and worker.error == ERROR
    log = (tmp_path / worker.log).read_text()
    assert log.count("Traceback (most recent call last)") == MAX_ATTEMPTS
    assert log.splitlines().count(ERROR) == MAX_ATTEMPTS  # each traceback's last line
    for attempt in range(1, MAX_ATTEMPTS + 1):
        assert f"(attempt {attempt} of {MAX_ATTEMPTS}" in log
    assert f"(attempt {MAX_ATTEMPTS} of {MAX_ATTEMPTS}), for good: {ERROR}" in log
    starts = [int(line.rsplit(" ", 1)[1]) for line in log.splitlines() if "probe:" in line]
    assert len(starts) == MAX_ATTEMPTS and all(0 <= s <= 40 for s in starts)

    listing = grokterm("ls", cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    assert f"worker {worker.id} (finished): {ERROR}  log: {worker.log}" in listing.stdout
