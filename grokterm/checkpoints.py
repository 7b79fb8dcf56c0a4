"""Cohort checkpoints: files beside the database, one per cohort, written atomically
(a crash mid-write leaves the older file). Bytes in, bytes out: the worker serializes
with torch, so this module (and a remote head) needs none."""

from __future__ import annotations

import os
from pathlib import Path


class Checkpoints:
    def __init__(self, directory: Path):
        self.dir = directory

    def path(self, cohort_id: int) -> Path:
        return self.dir / f"cohort-{cohort_id}.pt"

    def load(self, cohort_id: int) -> bytes | None:
        path = self.path(cohort_id)
        return path.read_bytes() if path.exists() else None

    def stage(self, cohort_id: int, data: bytes, writer: int) -> Path:
        """Write a state beside its place, not yet in it (one file per writer)."""
        path = self.path(cohort_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        staged = path.with_suffix(f".{writer}.tmp")
        staged.write_bytes(data)
        return staged

    def commit(self, staged: Path, cohort_id: int) -> Path:
        """Put a staged state in place, atomically: a crash leaves the older file."""
        os.replace(staged, self.path(cohort_id))
        return self.path(cohort_id)

    def set_aside(self, cohort_id: int) -> Path:
        """Move a state that cannot be loaded out of the way, kept for a look."""
        bad = self.path(cohort_id).with_suffix(".pt.bad")
        os.replace(self.path(cohort_id), bad)
        return bad

    def remove(self, cohort_id: int) -> None:
        self.path(cohort_id).unlink(missing_ok=True)
