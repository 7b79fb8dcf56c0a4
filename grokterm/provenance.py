"""Where a sweep's numbers came from: the machine, the torch build and the engine that
trained them. float32 curves are bit-identical only on the same CPU (its vector
instructions), torch build and maths library; docs/reproduction.md says what differs
across machines. A worker records this when it registers (it imports torch)."""

from __future__ import annotations

import json
import os
import platform
import re
from pathlib import Path


def machine(device: str, engine: str = "auto", precision: str = "float32") -> dict:
    """This process's machine as a worker on `device` sees it."""
    import torch

    build = torch.__config__.show()
    info = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "isa": torch.backends.cpu.get_cpu_capability(),
        "gpu": torch.cuda.get_device_name(device) if device.startswith("cuda") else None,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "blas": _setting(build, "BLAS_INFO"),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "engine": engine,  # the worker's setting; auto resolves per cohort (its log says)
        "precision": precision,
    }
    return {k: v for k, v in info.items() if v is not None}


def describe(info: dict | str | None) -> str:
    """One line for a person: 'AMD EPYC (2 cores, AVX512), torch 2.13.0 (mkl), engine eager'."""
    if isinstance(info, str):
        info = json.loads(info)
    if not info:
        return "not recorded"
    where = (
        info.get("gpu")
        or f"{info.get('cpu', '?')} ({info.get('cores', '?')} cores, {info.get('isa', '?')})"
    )
    build = ", ".join(
        x for x in (info.get("blas"), info.get("cuda") and f"CUDA {info['cuda']}") if x
    )
    return (
        f"{where}, torch {info.get('torch', '?')}"
        + (f" ({build})" if build else "")
        + f", engine {info.get('engine', '?')}"
        + (f", {info['precision']}" if info.get("precision", "float32") != "float32" else "")
    )


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    found = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
    return found.group(1).strip() if found else platform.machine()


def _setting(build: str, name: str) -> str | None:
    found = re.search(rf"{name}=([^,\s]+)", build)
    return found.group(1) if found else None
