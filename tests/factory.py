"""The one way tests build records: runs with their config, grid, final values and
label, and metric curves. Defaults are the paper's single-task run."""

from __future__ import annotations

import itertools

from grokterm.config import RunConfig
from grokterm.records import Dynamics, MetricPoint, Run

_ids = itertools.count(1)


def run(d: int = 64, n: int = 3000, seed: int = 0, val: float | None = 1.0, label: str | None = None,
        train: float | None = 1.0, status: str = "done", grid: dict | None = None,
        norm_change: float | None = None, bumps: int = 0, key: str | None = None,
        **config) -> Run:  # fmt: skip
    """A finished run at (d, n_train, seed) whose grid is those three unless given."""
    cfg = RunConfig(d=d, n_train=n, seed=seed, **config)
    grid = {"d": d, "n_train": n, "seed": seed} if grid is None else grid
    info = dynamics_info(label, norm_change, bumps)
    return Run(id=next(_ids), sweep_id=1, cohort_id=1, key=key or " ".join(f"{k}={v}" for k, v in grid.items()),
               grid=grid, config=cfg, status=status, step=cfg.steps,
               final={"train_acc": train, "val_acc": val}, label=label, info=info)  # fmt: skip


def dynamics_info(label=None, norm_change=None, bumps=0) -> Dynamics:
    return Dynamics(label=label, fit_step=None, rise_step=None, gen_step=None, final_train=1.0,
                    final_val=None, max_gap=0.0, norm_start=0.0, norm_peak=0.0, norm_final=0.0,
                    norm_change=norm_change, last_step=0, bumps=bumps)  # fmt: skip


def curve(train, val, norm=None, every: int = 100, run_id: int = 1) -> list[MetricPoint]:
    """Metric points every `every` steps from step 0 (norm 40 throughout by default)."""
    norm = norm or [40.0] * len(train)
    return [MetricPoint(run_id, i * every, {"train_acc": t, "val_acc": v, "norm": x})
            for i, (t, v, x) in enumerate(zip(train, val, norm))]  # fmt: skip
