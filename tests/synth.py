"""Synthetic sweeps written into runs.db through the store (no training): fixed
content for snapshot tests, and fig 6's size for measuring the app's refresh time."""

from __future__ import annotations

import math
import random
from datetime import datetime, timezone

from grokterm.labels import dynamics
from grokterm.planning import plan_cohorts
from grokterm.presets import parse_preset, tomllib
from grokterm.records import MetricPoint
from grokterm.store import Store

CREATED = datetime(2026, 11, 1, 12, tzinfo=timezone.utc).timestamp()  # snapshots show it


def fake_curve(
    d: int, n: int, seed: int, steps: int, every: int, run_id: int = 0, measures: bool = False
) -> list[MetricPoint]:
    """A plausible curve: memorize early; generalize later the larger d and n are.
    `measures`: the circuit's too, its restricted loss falling a little before validation
    rises where the run generalizes, and softmax collapse once the training set is fit."""
    rng = random.Random(d * 100003 + n * 7 + seed)
    gen_at = steps * min(1.2, 2.5e5 / (d * n)) * (0.8 + 0.4 * rng.random())
    final = 1.0 if d * n > 1.3e5 else (0.5 if d * n > 0.9e5 else 0.02)
    points = []
    for step in range(0, steps + 1, every):
        train = min(1.0, 0.01 + step / (steps * 0.05))
        val = 0.01 + (final - 0.01) / (1 + math.exp(-(step - gen_at) / (steps * 0.03)))
        norm = 30 + 15 * min(1, step / (steps * 0.05)) - 10 * (val - 0.01)
        values = {"train_acc": round(train, 4), "val_acc": round(val, 4), "train_loss": 1.0 - train,
                  "val_loss": 1.0 - val, "norm": round(norm, 3)}  # fmt: skip
        if measures:
            formed = 1 / (1 + math.exp(-(step - 0.8 * gen_at) / (steps * 0.03)))
            values["restricted_loss"] = round(4.0 * (1 - formed * min(final, 0.999)), 6)
            values["softmax_collapse"] = round(min(1.0, max(0.0, train - 0.3)), 4)
        points.append(MetricPoint(run_id, step, values))
    return points


def make_sweep(
    db, ds, ns, seeds, steps=2000, every=100, name="synth", finish=True, measures=False,
    running=False,
) -> int:  # fmt: skip
    """A sweep, every cohort trained and finished; `finish` False: the first cohort
    stopped halfway, the rest queued; `running`: the first cohort halfway, its worker
    still training it (at 40 steps/s), the rest queued."""
    text = f"""name = "{name}"
title = "Synthetic {name}"
figure = "6"
seeds = {seeds}
run = {{ p = 113, steps = {steps}, eval_every = {every} }}
grid = {{ n_train = {list(ns)}, d = {list(ds)} }}
plot = {{ kind = "final", x = "d", series = "n_train" }}
"""
    preset = parse_preset(tomllib.loads(text), f"{name}.toml", text)
    store = Store(db, clock=lambda: CREATED)  # a fixed clock: the same database every time
    sweep_id = store.open_sweep(preset, "paper", plan_cohorts(preset.expand(), 1, 64), fresh=True)[
        0
    ].id
    worker = store.register_worker(sweep_id, "cpu")
    while (job := store.claim_cohort(sweep_id, worker, "cpu", lease_s=3600)) is not None:
        points, labels = [], {}
        at = steps // 2 if running else steps
        for run in job.runs:
            c = run.config
            curve = fake_curve(c.d, c.n_train, c.seed, steps, every, run.id, measures)
            curve = [m for m in curve if m.step <= at]
            points += curve
            labels[run.id] = dynamics(curve)
        store.write_progress(job.cohort_id, worker, at, points, 40.0 if running else None,
                             labels=labels)  # fmt: skip
        if running:
            break
        if finish:
            store.finish_cohort(job.cohort_id, worker)
        else:
            store.release_cohort(job.cohort_id, worker)
            break
    if not running:
        store.worker_exit(worker, "finished")
    store.close()
    return sweep_id
