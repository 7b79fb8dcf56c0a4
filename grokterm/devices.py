"""The worker slots of this machine: one per GPU (sharing its memory), else one per
CPU core with one thread. Asks torch about GPUs in a subprocess, so the CLI and the
app never import it."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

GPU_MEMORY_SHARE = 0.85  # of each GPU's memory, for its workers' cohorts
CPU_MEMORY_SHARE = 0.8  # of this machine's memory, split between its CPU workers
PREVIEW_GPU = 80 * 2**30  # a GPU previewed where none is visible: an 80 GB H100's memory
# The training step's forms (grokterm.experiment.engines); auto picks per cohort.
FORMS = ("eager", "compiled", "graphs")  # what a cohort trains with
ENGINES = ("auto", *FORMS)
# float32 everywhere by default; tf32 lets a GPU's matmuls round inputs to 10 mantissa
# bits (about 1e-3), which can move when a run groks: only when asked for.
PRECISIONS = ("float32", "tf32")


@dataclass
class WorkerSlot:
    device: str
    threads: int
    memory: int | None = None  # bytes a cohort of this worker may take; None: not limited
    preview: bool = False  # a GPU planned for where none is visible (a dry run)
    engine: str = "auto"  # how its worker's training step runs (ENGINES)
    precision: str = "float32"  # its matmuls' precision (PRECISIONS)
    node: str | None = None  # the Ray node its worker is placed on (the Ray backend)


def slots_kind(slots: list[WorkerSlot]) -> str:
    """ "cuda" or "cpu": what the planner and the estimate need to know of the workers."""
    return "cuda" if slots[0].device.startswith("cuda") else "cpu"


def worker_slots(device: str, workers: int | None, preview: bool = False) -> list[WorkerSlot]:
    """Default: one worker per GPU, else one per CPU core with one thread each.
    Workers share the memory of their GPU, or of the machine (a share of it, for the
    planner). A preview (a dry run) of a GPU plan where none is visible plans for one
    80 GB GPU."""
    gpu = device in ("auto", "cuda") or device.startswith("cuda:")
    gpus = gpu_memory() if gpu else []
    if device == "auto":
        device = "cuda" if gpus else "cpu"
    if device == "cpu":
        n = workers or os.cpu_count() or 1
        memory = machine_memory()
        return [WorkerSlot("cpu", 1, memory and int(memory * CPU_MEMORY_SHARE) // n)
                for _ in range(n)]  # fmt: skip
    if not gpu:
        raise ValueError(f"expected auto, cpu, cuda or cuda:I, got {device!r}")
    previewed = not gpus and preview
    if previewed:
        gpus = [PREVIEW_GPU] * (int(device[5:]) + 1 if device[5:].isdigit() else 1)
    if not gpus:
        raise ValueError(f"{device} asked for, but no CUDA GPU is visible")
    if device == "cuda":
        indices = [i % len(gpus) for i in range(workers or len(gpus))]
    else:
        index = device.removeprefix("cuda:")
        if not index.isdigit() or int(index) >= len(gpus):
            raise ValueError(f"expected cuda:I with I below {len(gpus)}, got {device!r}")
        indices = [int(index)] * (workers or 1)
    return [
        WorkerSlot(f"cuda:{i}", 1, int(gpus[i] * GPU_MEMORY_SHARE) // indices.count(i), previewed)
        for i in indices
    ]


def machine_memory() -> int | None:
    """This machine's physical memory in bytes, where the system says."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def gpu_memory() -> list[int]:
    """Total memory of each CUDA device, asking torch in a subprocess only where an
    NVIDIA driver exists (the CLI and the app do not import torch)."""
    if not any(Path("/dev").glob("nvidia[0-9]*")):
        return []
    code = (
        "import torch; print(*(torch.cuda.get_device_properties(i).total_memory for i in "
        "range(torch.cuda.device_count() if torch.cuda.is_available() else 0)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    return [int(x) for x in out.stdout.split()]
