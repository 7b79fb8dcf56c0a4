"""Where a sweep's cohorts train, behind one small protocol.

A backend starts workers for a sweep on worker slots; the workers claim cohorts and
report through a sink, so the backend itself only starts, watches and stops them.
`local` (the default) is a pool of processes on this machine; `ray` is one Ray actor
per slot on a Ray cluster (or a local instance), driven by this process."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from grokterm.devices import WorkerSlot

BACKENDS = ("local", "ray")


class Backend(Protocol):
    def start(self) -> None:
        """Start one worker per slot."""

    def check(self) -> None:
        """Replace a worker that died while the sweep still has work (bounded); not one
        that stopped when asked (the app's `x`): a clean stop stays stopped."""

    @property
    def stopped(self) -> int:
        """How many of its workers have stopped when asked, and were not replaced."""

    def alive(self) -> int:
        """How many of its workers are running."""

    def stop(self) -> None:
        """Ask every worker to checkpoint and hand its cohort back; returns at once."""

    def wait(self, timeout: float = 120) -> None:
        """Wait for the workers to exit (the sweep finished, or they were asked to stop)."""

    @property
    def log_dir(self) -> Path:
        """Where the workers' output is, for a user to read."""

    @property
    def outlives_head(self) -> bool:
        """Whether its workers keep training when this process exits (local: they are
        processes of their own; Ray: the actors end with the head that drives them)."""


def open_backend(name: str, db: Path, sweep_id: int, slots: list[WorkerSlot],
                 address: str | None = None) -> Backend:  # fmt: skip
    """The workers of a sweep on a backend; `address`: the Ray cluster's (None: a
    local instance)."""
    if name == "local":
        from grokterm.backends.local import LocalPool

        return LocalPool(db, sweep_id, slots)
    if name == "ray":
        from grokterm.backends.ray_pool import RayPool

        return RayPool(db, sweep_id, slots, address)
    raise ValueError(f"expected one of {', '.join(BACKENDS)}, got {name!r}")
