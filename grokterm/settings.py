"""Settings read from the environment (GROKTERM_*), checked where they are read. The CLI
checks them all before it starts anything, so a bad value is one line there, not a
worker's crash later."""

from __future__ import annotations

import math
import os

# name: (default, what it is); every one is a positive number of seconds
SECONDS = {
    "GROKTERM_LEASE_S": (60.0, "heartbeat lapse after which a worker's cohort is taken over"),
    "GROKTERM_FLUSH_S": (2.0, "how often a worker writes its metrics and heartbeat"),
    "GROKTERM_CHECKPOINT_S": (30.0, "how often a worker saves its cohort's state"),
    "GROKTERM_BUSY_TIMEOUT_S": (60.0, "how long a write waits for the database lock"),
    "GROKTERM_PROGRESS_S": (30.0, "how often `grokterm run` prints a line, stdout not a terminal"),
}


class SettingError(ValueError):
    """A GROKTERM_* variable with a value it cannot take: says which and what is allowed."""


def seconds(name: str) -> float:
    """A positive, finite number of seconds from the environment, else its default."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return SECONDS[name][0]
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise SettingError(f"{name}: expected a positive number of seconds, got {raw!r}")
    return value


def check() -> None:
    """Raise SettingError for the first GROKTERM_* variable set to a value it cannot take."""
    for name in SECONDS:
        seconds(name)
