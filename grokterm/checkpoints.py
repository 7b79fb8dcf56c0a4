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

    def save(self, cohort_id: int, data: bytes, writer: int) -> Path:
        path = self.path(cohort_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{writer}.tmp")  # one per writer: two never share a file
        tmp.write_bytes(data)
        os.replace(tmp, path)
        return path

    def remove(self, cohort_id: int) -> None:
        self.path(cohort_id).unlink(missing_ok=True)
