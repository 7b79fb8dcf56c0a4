"""Each GPU's utilisation and memory, for the sweep screen to show beside its workers.

It reads this machine's GPUs only, through NVIDIA's management library (the `gpu` extra,
`nvidia-ml-py`): the GPUs of a Ray cluster's other nodes are not seen. Without the
library or a driver there is nothing to show, so `read()` returns [] rather than raising.
"""

from __future__ import annotations

from dataclasses import dataclass

GIB = 1024**3

# None: not tried yet; True: NVML initialised (kept for the process, as the app polls
# every second); False: no library or no driver, remembered so each poll costs nothing.
_ready: bool | None = None


@dataclass
class GpuStat:
    index: int
    name: str
    util_percent: int
    memory_used: int  # bytes
    memory_total: int  # bytes


def read() -> list[GpuStat]:
    """Every GPU of this machine now; [] without pynvml or a working driver."""
    global _ready
    if _ready is False:
        return []
    try:
        import pynvml  # here, not at the top: the app starts without the extra
    except ImportError:
        _ready = False
        return []
    if _ready is None:
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError:
            _ready = False
            return []
        _ready = True
    try:
        count = pynvml.nvmlDeviceGetCount()
    except pynvml.NVMLError:
        return []
    stats = []
    for index in range(count):
        try:
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            name = pynvml.nvmlDeviceGetName(handle)
            util = pynvml.nvmlDeviceGetUtilizationRates(handle).gpu
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
        except pynvml.NVMLError:
            continue  # one GPU lost or busy resetting must not hide the others
        if isinstance(name, bytes):  # older bindings return bytes
            name = name.decode(errors="replace")
        stats.append(GpuStat(index, name, int(util), int(memory.used), int(memory.total)))
    return stats


def lines(stats: list[GpuStat]) -> list[str]:
    """One line per GPU, e.g. `GPU 0 NVIDIA H200: 87% busy, 12.3/139.8 GiB`."""
    return [
        f"GPU {s.index} {s.name}: {s.util_percent}% busy, "
        f"{s.memory_used / GIB:.1f}/{s.memory_total / GIB:.1f} GiB"
        for s in stats
    ]


def read_lines() -> list[str]:
    """What the sweep screen shows: a line per GPU of this machine, none without one."""
    return lines(read())
