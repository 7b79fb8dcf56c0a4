"""The store under real faults, through `grokterm run`: a worker frozen (SIGSTOP) past
its lease wakes up after another worker took its cohort over, and runs.db's write lock
held by another process past the busy timeout. Each sweep finishes with every curve
equal to the uninterrupted one."""

import os
import re
import signal
import sqlite3
import subprocess
import textwrap
import time
from pathlib import Path

import pytest
from conftest import grokterm, patch_on_import, popen_grokterm, write_preset
from test_faults import curves, read, started, wait_for

# Two runs that never share a cohort (d differs): one cohort per worker. About 6 s of
# training per cohort on a CPU core, long enough to freeze a worker mid-cohort.
TWO = """
name = "two"
title = "Two cohorts"
seeds = [0]

[run]
p = 23
n_train = 150
steps = 1500
eval_every = 50

[grid]
d = [32, 48]
"""

# A probe in every process (the code under test untouched): each cohort-scoped call a
# worker makes on the store, and its outcome, goes to that worker's log.
PROBE = """
import sys


def patch(module):
    Store = module.Store

    def say(*words):
        print("probe:", *words, file=sys.stderr, flush=True)

    def claim(original):
        def probe(self, sweep_id, worker_id, *args, **kwargs):
            job = original(self, sweep_id, worker_id, *args, **kwargs)
            if job is not None:
                say("claim_cohort", f"cohort={job.cohort_id}", f"worker={worker_id}",
                    f"step={job.step}")
            return job
        return probe

    def owned(name, original):
        def probe(self, cohort_id, worker_id, *args, **kwargs):
            step = ""
            if name == "write_progress":
                first = min((p.step for p in args[1]), default=None)
                step = f"step={args[0]} first={first}"
            try:
                result = original(self, cohort_id, worker_id, *args, **kwargs)
            except module.LostCohort:
                say(name, f"cohort={cohort_id}", f"worker={worker_id}", step, "LostCohort")
                raise
            say(name, f"cohort={cohort_id}", f"worker={worker_id}", step, "ok")
            return result
        return probe

    Store.claim_cohort = claim(Store.claim_cohort)
    for name in ("write_progress", "save_checkpoint", "discard_checkpoint", "finish_cohort",
                 "release_cohort", "fail_cohort"):
        setattr(Store, name, owned(name, getattr(Store, name)))
"""


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    directory = tmp_path_factory.mktemp("straight")
    preset = write_preset(directory, TWO, "two.toml")
    result = grokterm("run", str(preset), "--workers", "2", cwd=directory)
    assert result.returncode == 0, result.stdout + result.stderr
    out = curves(directory / "runs.db")
    assert len(out) == 2 * 31 + 1  # steps 0, 50, ..., 1500 of both runs, and the labels
    return out


def lock_is_free(db: Path, wait_s: float = 1.0) -> bool:
    """Whether runs.db's write lock can be taken within wait_s (then let go at once)."""
    conn = sqlite3.connect(db, timeout=wait_s, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        conn.close()


def stopped(pid: int) -> bool:
    """Whether the process is in the stopped state (T) now."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] in ("T", "t")


def freeze(pid: int, db: Path, tries: int = 20) -> None:
    """SIGSTOP the process, but not while it holds the write lock (mid-transaction):
    a writer frozen there would stall every other worker, not the fault under test."""
    for _ in range(tries):
        os.kill(pid, signal.SIGSTOP)
        wait_for(lambda: stopped(pid), timeout=10)
        if lock_is_free(db):
            return
        os.kill(pid, signal.SIGCONT)
        time.sleep(0.05)
    raise AssertionError(f"worker {pid} held the write lock at every try to freeze it")


def mid_cohort(store):
    """(cohort, its worker) for a cohort training with a checkpoint behind it, still
    early enough that there is work left once it is taken over."""
    workers = {w.cohort_id: w for w in store.workers(1) if w.cohort_id is not None}
    for c in store.cohorts(1):
        if c.status == "running" and c.checkpoint and 200 <= c.step <= 800 and c.id in workers:
            return c, workers[c.id]
    return None


def stop_on_failure(proc, frozen: list[int]) -> None:
    """After a failed check: wake any frozen worker and stop the sweep (bounded)."""
    for pid in frozen:
        os.kill(pid, signal.SIGCONT)
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def probe_lines(log: str) -> list[str]:
    return [line for line in Path(log).read_text().splitlines() if line.startswith("probe:")]


def test_a_frozen_worker_wakes_after_takeover_and_writes_nothing(tmp_path, uninterrupted):
    """Worker A is frozen (SIGSTOP) mid-cohort; its heartbeat lapses; worker B finishes
    its own cohort, takes A's over from its checkpoint and trains it on; then A is woken.

    Proven: A's first write after waking (a flush or a checkpoint) is refused with
    LostCohort, A makes no successful cohort write afterwards and never claims a cohort
    again (the probe logs every such call A's process makes, with its outcome), A logs no
    traceback and exits on its own, no worker is respawned, and the sweep's curves and
    labels equal the uninterrupted ones. Not proven by the curves alone: training is
    deterministic, so rows a stale worker rewrote would carry the same values; that A
    wrote none rests on the probe. A's heartbeat thread (`beat`, which names no cohort)
    is not probed; it touches only cohorts A owns, which is none once taken over."""
    preset = write_preset(tmp_path, TWO, "two.toml")
    db = tmp_path / "runs.db"
    env = patch_on_import(tmp_path, "grokterm.store", PROBE)
    proc = popen_grokterm("run", str(preset), "--workers", "2", cwd=tmp_path, env=env)
    frozen: list[int] = []
    try:
        wait_for(lambda: started(tmp_path), timeout=60)
        cohort, a = wait_for(lambda: read(db, mid_cohort), timeout=60)
        frozen.append(a.pid)
        freeze(a.pid, db)
        frozen_at = next(c.step for c in read(db, lambda s: s.cohorts(1)) if c.id == cohort.id)

        def taken_over(store):
            c = next(c for c in store.cohorts(1) if c.id == cohort.id)
            if c.status == "running" and c.worker_id not in (None, a.id) and c.step > frozen_at:
                return c, next(w for w in store.workers(1) if w.id == a.id)
            return None

        owner, a_then = wait_for(lambda: read(db, taken_over), timeout=60)
        os.kill(a.pid, signal.SIGCONT)
        frozen.clear()
        out, _ = proc.communicate(timeout=180)
    except BaseException:
        stop_on_failure(proc, frozen)  # never leave a stopped process or a sweep behind
        raise
    assert proc.returncode == 0, out
    assert "Traceback" not in out
    assert a_then.status == "lost"  # B's claim marked the silent A lost
    assert curves(db) == uninterrupted  # every run done, every point and label equal

    workers = read(db, lambda store: store.workers(1))
    assert len(workers) == 2  # A was frozen, not dead: nothing respawned
    final_a = next(w for w in workers if w.id == a.id)
    assert final_a.status == "finished"  # back to 'running' by its first beat, then done
    assert final_a.cohort_id is None
    cohorts = read(db, lambda store: store.cohorts(1))
    assert [c.status for c in cohorts] == ["done", "done"]

    # A's story, as its process told it: one claim, writes accepted up to the freeze,
    # one refused write on waking, and nothing for any cohort after that.
    log = Path(final_a.log).read_text()
    assert "Traceback" not in log
    lines = probe_lines(final_a.log)
    claims = [line for line in lines if line.startswith("probe: claim_cohort")]
    assert claims == [f"probe: claim_cohort cohort={cohort.id} worker={a.id} step=0"]
    lost = [i for i, line in enumerate(lines) if line.endswith("LostCohort")]
    assert len(lost) == 1, lines
    assert re.match(
        rf"probe: (write_progress|save_checkpoint) cohort={cohort.id} worker={a.id} ",
        lines[lost[0]],
    )
    assert lines[lost[0] + 1 :] == []
    before = [line for line in lines[: lost[0]] if "write_progress" in line]
    assert before and all(line.endswith(" ok") for line in before)
    last_step = int(re.search(r"step=(\d+)", before[-1]).group(1))
    assert last_step <= frozen_at  # nothing of A's was stored past where it froze

    # B's: its own cohort, then A's where A's last flush left it, trained on from A's
    # checkpoint: its first points there are after step 0, the first evaluation (every
    # 50 steps) past a checkpoint no newer than the freeze, so at most frozen_at + 50
    # (exactly that when the checkpoint was taken at the frozen step itself).
    b = next(w for w in workers if w.id == owner.worker_id)
    b_lines = probe_lines(b.log)
    b_claims = [line for line in b_lines if line.startswith("probe: claim_cohort")]
    assert len(b_claims) == 2, b_claims
    assert b_claims[1] == f"probe: claim_cohort cohort={cohort.id} worker={b.id} step={frozen_at}"
    pattern = rf"probe: write_progress cohort={cohort.id} worker={b.id} step=\d+ first=(\d+) ok"
    resumed = next(
        m for line in b_lines if (m := re.fullmatch(pattern, line))
    )  # some had no points
    assert 0 < int(resumed.group(1)) <= frozen_at + 50, resumed.group(0)
    assert "LostCohort" not in "\n".join(b_lines)


def test_write_lock_held_past_the_busy_timeout(tmp_path, uninterrupted):
    """Another process (a user's sqlite3 shell, here the test) holds runs.db's write lock
    for 4 s, eight busy timeouts, mid-sweep. The workers wait for it, saying so in their
    logs, then carry on; the CLI, only reading meanwhile (WAL), is unaffected."""
    preset = write_preset(tmp_path, TWO, "two.toml")
    db = tmp_path / "runs.db"
    env = {"GROKTERM_BUSY_TIMEOUT_S": "0.5"}
    proc = popen_grokterm("run", str(preset), "--workers", "2", cwd=tmp_path, env=env)

    def training(store):
        cohorts = store.cohorts(1)
        return store.points(1) and any(
            c.status == "running" and 100 <= c.step <= 700 for c in cohorts
        )

    try:
        wait_for(lambda: started(tmp_path), timeout=60)
        wait_for(lambda: read(db, training), timeout=60)
        conn = sqlite3.connect(db, timeout=5, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            held = time.monotonic()
            at_start = read(db, lambda store: store.progress(1))  # reads go on under the lock
            time.sleep(4)
            at_end = read(db, lambda store: store.progress(1))
            assert proc.poll() is None  # the CLI neither crashed nor finished meanwhile
            assert time.monotonic() - held >= 4
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        assert not at_start.complete
        assert at_end == at_start  # nothing was written while we held the lock
        out, _ = proc.communicate(timeout=180)
    except BaseException:
        stop_on_failure(proc, [])
        raise
    assert proc.returncode == 0, out
    assert "Traceback" not in out
    assert curves(db) == uninterrupted
    logs = {p.name: p.read_text() for p in (tmp_path / "runs.db.logs").glob("*.log")}
    assert any("locked by another process" in text for text in logs.values()), logs
    assert not any("Traceback" in text for text in logs.values()), logs
    workers = read(db, lambda store: store.workers(1))
    assert [w.status for w in workers] == ["finished", "finished"]  # none lost or respawned


# A worker stops itself (SIGSTOP, all its threads) on the first call of NAME in any
# process, just before it: frozen between its last accepted write and its finish (or
# release). Every cohort's end is logged with whether the worker still owned it.
PAUSE = """
import os
import signal
import sys


def patch(module):
    Store = module.Store
    end = Store._end_cohort

    def logged_end(self, cohort_id, worker_id, status, error=None):
        owned = end(self, cohort_id, worker_id, status, error)
        print(f"probe: end cohort={cohort_id} worker={worker_id} {status} owned={owned}",
              file=sys.stderr, flush=True)
        return owned

    original = getattr(Store, NAME)

    def pausing(self, cohort_id, worker_id, *args, **kwargs):
        try:
            fd = os.open(MARK, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return original(self, cohort_id, worker_id, *args, **kwargs)
        os.write(fd, f"{os.getpid()} {cohort_id} {worker_id}".encode())
        os.close(fd)
        os.kill(os.getpid(), signal.SIGSTOP)
        return original(self, cohort_id, worker_id, *args, **kwargs)

    Store._end_cohort = logged_end
    setattr(Store, NAME, pausing)
"""


@pytest.mark.parametrize("write", ["finish_cohort", "release_cohort"])
def test_a_worker_frozen_before_its_finish_or_release_changes_nothing_on_waking(
    tmp_path, uninterrupted, write
):
    """Worker A freezes itself right before it finishes its cohort (its last points
    stored) or, asked to stop, right before it hands the cohort back (its checkpoint
    saved). Its lease lapses, worker B takes the cohort over and trains it; A is woken
    while B trains. A's finish or release must change nothing (the store says it no
    longer owned the cohort: `owned=False` in A's log), and the sweep ends with every
    curve equal to the uninterrupted one."""
    preset = write_preset(tmp_path, TWO, "two.toml")
    db, mark = tmp_path / "runs.db", tmp_path / "paused"
    probe = f"NAME = {write!r}\nMARK = {str(mark)!r}\n" + textwrap.dedent(PAUSE)
    env = patch_on_import(tmp_path, "grokterm.store", probe)
    if write == "finish_cohort":  # no checkpoint: B trains A's cohort again from step 0
        env["GROKTERM_CHECKPOINT_S"] = "1000"
    proc = popen_grokterm("run", str(preset), "--workers", "2", cwd=tmp_path, env=env)
    frozen: list[int] = []
    try:
        wait_for(lambda: started(tmp_path), timeout=60)
        if write == "release_cohort":  # ask one worker to stop mid-cohort: it saves, then releases
            _, a = wait_for(lambda: read(db, mid_cohort), timeout=60)
            os.kill(a.pid, signal.SIGTERM)
        wait_for(lambda: mark.exists() and len(mark.read_text().split()) == 3, timeout=60)
        pid, cohort_id, a_id = map(int, mark.read_text().split())
        frozen.append(pid)
        wait_for(lambda: stopped(pid), timeout=10)

        def b_trains(store):
            c = next(c for c in store.cohorts(1) if c.id == cohort_id)
            return c.status == "running" and c.worker_id not in (None, a_id) and c.step < 1500

        wait_for(lambda: read(db, b_trains), timeout=60)
        os.kill(pid, signal.SIGCONT)
        frozen.clear()
        log = next(w.log for w in read(db, lambda s: s.workers(1)) if w.id == a_id)
        ended = f"probe: end cohort={cohort_id} worker={a_id} "
        line = wait_for(
            lambda: next((x for x in probe_lines(log) if x.startswith(ended)), None), 60
        )
        still = read(db, lambda s: [r.status for r in s.runs(1) if r.cohort_id == cohort_id])
        out, _ = proc.communicate(timeout=180)
    except BaseException:
        stop_on_failure(proc, frozen)
        raise
    assert line.endswith("owned=False"), line  # the stale finish or release was refused
    assert still == ["running"] or still == ["done"]  # B's run, never queued again by A
    assert proc.returncode == 0, out
    assert "Traceback" not in out
    assert curves(db) == uninterrupted
    assert [c.status for c in read(db, lambda s: s.cohorts(1))] == ["done", "done"]
