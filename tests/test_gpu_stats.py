"""gpu_stats against a fake pynvml (two GPUs, errors, no driver, no library) and, where
installed, the real library on this GPU-less machine."""

import sys
import types
from types import SimpleNamespace

import pytest

from grokterm import gpu_stats
from grokterm.gpu_stats import GpuStat

GIB = 1024**3


class FakeNVMLError(Exception):
    pass


def fake_pynvml(gpus, init_error=False, failing=()):
    """A pynvml module with the given GPUs (name, util, used, total); GPUs whose index is in
    `failing` raise NVMLError on their utilisation read. `calls` counts each function."""
    module = types.ModuleType("pynvml")
    module.NVMLError = FakeNVMLError
    module.calls = {"init": 0, "count": 0}

    def nvmlInit():
        module.calls["init"] += 1
        if init_error:
            raise FakeNVMLError("NVML Shared Library Not Found")

    def nvmlDeviceGetCount():
        module.calls["count"] += 1
        return len(gpus)

    def nvmlDeviceGetUtilizationRates(handle):
        if handle in failing:
            raise FakeNVMLError("GPU is lost")
        return SimpleNamespace(gpu=gpus[handle][1], memory=0)

    module.nvmlInit = nvmlInit
    module.nvmlDeviceGetCount = nvmlDeviceGetCount
    module.nvmlDeviceGetHandleByIndex = lambda index: index
    module.nvmlDeviceGetName = lambda handle: gpus[handle][0]
    module.nvmlDeviceGetUtilizationRates = nvmlDeviceGetUtilizationRates
    module.nvmlDeviceGetMemoryInfo = lambda handle: SimpleNamespace(
        used=gpus[handle][2], total=gpus[handle][3], free=gpus[handle][3] - gpus[handle][2]
    )
    return module


@pytest.fixture(autouse=True)
def fresh_state(monkeypatch):
    """Each test starts as a new process would: NVML not yet tried."""
    monkeypatch.setattr(gpu_stats, "_ready", None)


TWO = [
    ("NVIDIA H200", 87, int(12.3 * GIB), int(139.8 * GIB)),
    (b"NVIDIA H100 80GB HBM3", 0, 0, 80 * GIB),
]


def test_two_gpus_read_and_worded(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(TWO))
    stats = gpu_stats.read()
    assert stats == [
        GpuStat(0, "NVIDIA H200", 87, int(12.3 * GIB), int(139.8 * GIB)),
        GpuStat(1, "NVIDIA H100 80GB HBM3", 0, 0, 80 * GIB),  # bytes name decoded
    ]
    assert gpu_stats.lines(stats) == [
        "GPU 0 NVIDIA H200: 87% busy, 12.3/139.8 GiB",
        "GPU 1 NVIDIA H100 80GB HBM3: 0% busy, 0.0/80.0 GiB",
    ]


def test_init_once_per_process(monkeypatch):
    fake = fake_pynvml(TWO)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    for _ in range(3):
        assert len(gpu_stats.read()) == 2
    assert fake.calls == {"init": 1, "count": 3}


def test_gpu_failing_mid_read_is_skipped(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(TWO, failing={0}))
    stats = gpu_stats.read()
    assert [s.index for s in stats] == [1]
    assert gpu_stats.lines(stats) == ["GPU 1 NVIDIA H100 80GB HBM3: 0% busy, 0.0/80.0 GiB"]


def test_init_failure_gives_nothing_and_is_not_retried(monkeypatch):
    fake = fake_pynvml(TWO, init_error=True)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    assert gpu_stats.read() == []
    assert gpu_stats.read() == []
    assert fake.calls == {"init": 1, "count": 0}


def test_no_library_gives_nothing(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml raises ImportError
    assert gpu_stats.read() == []
    assert gpu_stats.read() == []


def test_no_gpus_no_lines():
    assert gpu_stats.lines([]) == []


def test_the_real_library_reads_this_machines_gpus_or_says_none():
    """With the real pynvml: where a driver answers, every GPU is worded; where none does
    (the CI machine), read() says [] and remembers it (no retry at every poll)."""
    pynvml = pytest.importorskip("pynvml")
    try:
        pynvml.nvmlInit()
        count = pynvml.nvmlDeviceGetCount()
    except pynvml.NVMLError:
        count = None
    stats = gpu_stats.read()
    if count is None:
        assert stats == [] and gpu_stats._ready is False
    else:
        assert len(stats) == count
        assert all(
            line.startswith(f"GPU {s.index} ") for s, line in zip(stats, gpu_stats.lines(stats))
        )
