"""Synthetic sweeps written straight into runs.db (no training): fixed content for
snapshot tests, and fig 6's size for measuring the app's refresh time."""

from __future__ import annotations

import json
import math
import random

from grokterm.analysis import dynamics
from grokterm.presets import parse_preset, tomllib
from grokterm.runner import plan_cohorts
from grokterm.store import Store


def fake_curve(d: int, n: int, seed: int, steps: int, every: int) -> list[dict]:
    """A plausible curve: memorize early; generalize later the larger d and n are."""
    rng = random.Random(d * 100003 + n * 7 + seed)
    gen_at = steps * min(1.2, 2.5e5 / (d * n)) * (0.8 + 0.4 * rng.random())
    final = 1.0 if d * n > 1.3e5 else (0.5 if d * n > 0.9e5 else 0.02)
    rows = []
    for step in range(0, steps + 1, every):
        train = min(1.0, 0.01 + step / (steps * 0.05))
        val = 0.01 + (final - 0.01) / (1 + math.exp(-(step - gen_at) / (steps * 0.03)))
        norm = 30 + 15 * min(1, step / (steps * 0.05)) - 10 * (val - 0.01)
        rows.append({"step": step, "train_acc": round(train, 4), "val_acc": round(val, 4),
                     "train_loss": 1.0 - train, "val_loss": 1.0 - val, "norm": round(norm, 3),
                     "extras": {}})  # fmt: skip
    return rows


def make_sweep(db, ds, ns, seeds, steps=2000, every=100, name="synth", finish=True) -> int:
    text = f"""name = "{name}"
title = "Synthetic {name}"
figure = "6"
seeds = {seeds}
run = {{ p = 113, steps = {steps}, eval_every = {every} }}
grid = {{ n_train = {list(ns)}, d = {list(ds)} }}
plot = {{ kind = "final", x = "d", series = "n_train" }}
"""
    preset = parse_preset(tomllib.loads(text), f"{name}.toml", text)
    store = Store(db)
    sweep_id = store.create_sweep(preset, "paper", plan_cohorts(preset.expand(), 1, 64))
    store.db.execute(
        "UPDATE sweeps SET created = '2026-11-01T12:00:00+00:00' WHERE id = ?", (sweep_id,)
    )
    worker = store.register_worker(sweep_id, "cpu")
    while (cohort := store.claim_cohort(sweep_id, worker, "cpu", lease_s=3600)) is not None:
        rows, labels = [], {}
        for run in cohort["runs"]:
            cfg = json.loads(run["config"])
            curve = fake_curve(cfg["d"], cfg["n_train"], cfg["seed"], steps, every)
            rows += [r | {"run_id": run["id"]} for r in curve]
            labels[run["id"]] = dynamics(curve).to_dict()
        store.write_progress(cohort["id"], worker, steps, rows, labels=labels)
        if finish:
            store.finish_cohort(cohort["id"], worker)
        else:
            store.release_cohort(cohort["id"], worker)
            break
    store.worker_exit(worker, "finished")
    store.db.execute("UPDATE workers SET started = 0, heartbeat = 0")
    store.close()
    return sweep_id
