"""Wall time of one sweep on the local backend against the Ray backend, measured in one
process on this machine (`grokterm bench --backends`).

The same 16 runs, planned the same way for the same workers, train in alternating
rounds (local, Ray, local, Ray, ...) into fresh stores, so a machine's load drifting
over the measurement touches both alike. The local Ray instance starts once, before
the first round, and is timed apart: the ratio is the Ray backend's overhead once the
cluster is up (its actors' start, the head's draining) against local processes. The
stored rows are compared too: the same cohorts must give the same numbers."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

from grokterm import sweeps
from grokterm.presets import load_preset
from grokterm.store import Store

# 16 runs of test_faults' slow sweep's kind: 4 data sizes x 4 seeds, a few seconds each.
PRESET = """
name = "bench-backends"
title = "16 runs for timing the backends"
seeds = [0, 1, 2, 3]

[run]
p = 23
d = 32
steps = 1500
eval_every = 50

[grid]
n_train = [150, 200, 250, 300]
"""
TARGET = 1.2  # the Ray backend's wall time within 20% of the local backend's


def time_sweep(directory: Path, backend: str, workers: int) -> tuple[float, list]:
    """Seconds from starting the workers until the sweep is finished, and its rows."""
    directory.mkdir(parents=True)
    preset_path = directory / "bench.toml"
    preset_path.write_text(PRESET)
    plan = sweeps.plan_sweep(load_preset(preset_path), "paper", "cpu", workers, backend=backend)
    db = directory / "runs.db"
    with closing(Store(db)) as store:
        sweep, _ = sweeps.open_sweep(store, plan)
        start = time.monotonic()
        pool = sweeps.start(db, sweep.id, plan.slots, backend)
        while not store.sweep_finished(sweep.id):
            pool.check()
            if not pool.alive() and not store.sweep_finished(sweep.id):
                raise RuntimeError(f"the {backend} backend's workers stopped; see {pool.log_dir}")
            time.sleep(0.05)
        wall = time.monotonic() - start
        pool.wait()
        keys = {r.id: r.key for r in store.runs(sweep.id)}
        rows = sorted((keys[p.run_id], p.step, sorted(p.values.items()))
                      for p in store.points(sweep.id))  # fmt: skip
    return wall, rows


def bench_backends(workers: int, rounds: int, out: Callable[[str], None]) -> int:
    """Print each round's wall times and the ratio; 0 if the rows of both agree."""
    from grokterm.backends.cluster import connect

    out(f"bench --backends: a 16-run sweep (1500 steps each) on {workers} workers, "
        f"{rounds} rounds of local then Ray")  # fmt: skip
    out(f"cluster start (a local Ray instance): {connect(None, workers):.1f} s, timed apart")
    walls: dict[str, list[float]] = {"local": [], "ray": []}
    rows: dict[str, list] = {}
    with tempfile.TemporaryDirectory(prefix="grokterm-bench-") as tmp:
        for i in range(rounds):
            for backend in walls:
                wall, rows[backend] = time_sweep(Path(tmp) / f"{backend}-{i}", backend, workers)
                walls[backend].append(wall)
            out(f"round {i + 1}: local {walls['local'][-1]:.1f} s, ray {walls['ray'][-1]:.1f} s")
    ratio = sum(walls["ray"]) / sum(walls["local"])
    verdict = "within" if ratio <= TARGET else "beyond"
    out(f"ray / local wall time: {ratio:.3f} ({verdict} the target of {TARGET:.2f})")
    same = rows["ray"] == rows["local"]
    out(f"metric rows of the two backends: {'identical' if same else 'DIFFERENT'} "
        f"({len(rows['local'])} rows)")  # fmt: skip
    return 0 if same else 1
