"""Shared helpers: small preset files and running the real `grokterm` command."""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

TINY = """
name = "tiny"
title = "Tiny test sweep"
figure = "test"
description = "Small runs for tests."
seeds = [0, 1]

[run]
p = 17
d = 16
steps = 200
eval_every = 20

[grid]
n_train = [80, 120]

[scale.quick]
steps = 60
seeds = 1
"""

# Short intervals so fault tests see checkpoints, flushes and lapsed leases quickly.
FAST_ENV = {"GROKTERM_CHECKPOINT_S": "0.3", "GROKTERM_FLUSH_S": "0.1", "GROKTERM_LEASE_S": "2"}


def pytest_configure(config):
    """Torch set as a worker sets it (deterministic kernels, denormals flushed), before
    any op starts a CPU thread pool, whose threads copy the denormal flag as they start."""
    from grokterm.experiment.trainer import configure_torch

    configure_torch()


def write_preset(directory: Path, text: str = TINY, name: str = "tiny.toml") -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


def grokterm(
    *args: str, cwd: Path, env: dict | None = None, **kwargs
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "grokterm.cli", *args], cwd=cwd, capture_output=True, text=True,
        env=os.environ | FAST_ENV | (env or {}), timeout=300, **kwargs,
    )  # fmt: skip


def popen_grokterm(*args: str, cwd: Path, env: dict | None = None) -> subprocess.Popen:
    """grokterm as a terminal would start it: with Ctrl-C's SIGINT live, even when the
    tests themselves run in the background, where the shell has it ignored."""
    return subprocess.Popen(
        [sys.executable, "-m", "grokterm.cli", *args], cwd=cwd, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=os.environ | FAST_ENV | (env or {}),
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip


# Appended to a patch's source in a sitecustomize.py: it calls patch(module) right after
# the module is first imported, so a process that never imports it pays nothing.
PATCH_ON_IMPORT = """

import importlib.util as _util
import sys as _sys


class _PatchOnImport:
    def find_spec(self, name, path=None, target=None):
        if name != MODULE:
            return None
        _sys.meta_path.remove(self)
        spec = _util.find_spec(name)
        load = spec.loader.exec_module

        def exec_module(module):
            load(module)
            patch(module)

        spec.loader.exec_module = exec_module
        return spec


_sys.meta_path.insert(0, _PatchOnImport())
"""


def without_module(directory: Path, name: str) -> dict:
    """The env for grokterm(...) under which `import name` fails, as where an optional
    extra is not installed."""
    fake = directory / f"no-{name}" / name
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(f"raise ImportError('No module named {name}')\n")
    return {"PYTHONPATH": f"{fake.parent}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def patch_on_import(directory: Path, module: str, patch: str) -> dict:
    """The env for grokterm(...) under which every process it starts (the CLI, its
    workers) calls `patch(mod)` once `module` is imported: a fault or a probe injected
    through a sitecustomize.py first on PYTHONPATH, the code under test untouched.
    `patch` is the source of a function `patch(module)`."""
    folder = directory / "inject"
    folder.mkdir()
    source = f"MODULE = {module!r}\n" + textwrap.dedent(patch) + PATCH_ON_IMPORT
    (folder / "sitecustomize.py").write_text(source)
    path = [str(folder), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {"PYTHONPATH": os.pathsep.join(path)}


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return write_preset(tmp_path)


@pytest.fixture(scope="session")
def uninterrupted(tmp_path_factory):
    """test_faults' SLOW sweep trained straight through on the local backend: the
    curves every interrupted or remote training of it must match."""
    from test_faults import SLOW, curves

    directory = tmp_path_factory.mktemp("straight")
    preset = write_preset(directory, SLOW, "slow.toml")
    assert grokterm("run", str(preset), "--workers", "2", cwd=directory).returncode == 0
    result = curves(directory / "runs.db")
    assert len(result) == 4 * 31 + 1
    return result


@pytest.fixture(autouse=True)
def no_saved_gpu_model(monkeypatch, tmp_path_factory):
    """No test reads a GPU step model a GPU box's own check saved (grokterm.gpu_model)."""
    monkeypatch.setenv("GROKTERM_GPU_MODEL", str(tmp_path_factory.getbasetemp() / "none.json"))


@pytest.fixture(autouse=True)
def no_gpu_lines(monkeypatch):
    """The app's screens show no GPU lines in tests, so that a GPU box with the gpu extra
    sees the same screens as CI; a test that checks them puts the reading back."""
    from grokterm.tui.screens.sweep import SweepScreen

    monkeypatch.setattr(SweepScreen, "gpu_lines", staticmethod(list))
