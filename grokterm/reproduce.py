"""One stored run as a preset of its own: every field of its config written out, its
grid values as one-value axes (so it keeps its key) and its seed. Training it alone
gives the same curves as in its cohort (the engine is exact). No torch."""

from __future__ import annotations

import json

from grokterm.export import safe_name
from grokterm.records import Run, Sweep


def alone(sweep: Sweep, run: Run) -> tuple[str, str]:
    """(file name, TOML text) of the preset that trains just this run."""
    name = f"{safe_name(sweep.name)}-run{run.id}"
    grid = {k: v for k, v in run.grid.items() if k != "seed"}
    config = {k: v for k, v in run.config.to_dict().items() if k != "seed" and k not in grid}
    lines = [
        f"name = {_value(name)}",
        f"title = {_value(f'{sweep.title}: {run.key} alone')}",
        f"figure = {_value(sweep.figure)}",
        f"description = {_value(f'run {run.id} of sweep {sweep.id} ({sweep.name}, {sweep.scale})')}",
        f"seeds = [{run.config.seed}]",
        "",
        "[run]",
        *(f"{k} = {_value(v)}" for k, v in config.items()),
        "",
        "[grid]",
        *(f"{k} = [{_value(v)}]" for k, v in grid.items()),
    ]
    return f"{name}.toml", "\n".join(lines) + "\n"


def command(file_name: str) -> str:
    return f"grokterm run {file_name} --db alone.db"


def _value(value) -> str:
    """A TOML value: strings quoted (JSON's escapes are TOML's), booleans in lower case."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)
