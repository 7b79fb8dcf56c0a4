"""The real `grokterm` command in a real terminal, as a user over SSH would drive it:
tmux runs the app, the test types keys and reads the screen back."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from synth import make_sweep

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


class Tmux:
    """One private tmux server (its own socket), one window of 100x30."""

    def __init__(self, socket: str):
        self.base = ["tmux", "-L", socket]

    def __call__(self, *args: str) -> str:
        out = subprocess.run([*self.base, *args], capture_output=True, text=True, timeout=30)
        return out.stdout

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "app")

    def wait_for(self, text: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.3)
        raise AssertionError(f"{text!r} never appeared; the screen was:\n{self.screen()}")

    def alive(self) -> bool:
        return (
            subprocess.run([*self.base, "has-session", "-t", "app"], capture_output=True).returncode
            == 0
        )


@pytest.fixture
def tmux():
    t = Tmux(f"grokterm-test-{os.getpid()}")
    yield t
    t("kill-server")


def test_the_app_in_tmux_open_a_sweep_read_the_phase_map_and_quit(tmp_path, tmux):
    make_sweep(tmp_path / "runs.db", [8, 32, 64], [2600, 4000], 2, name="synth")
    (tmp_path / "presets").mkdir()
    shutil.copy(ROOT / "presets" / "demo.toml", tmp_path / "presets")
    grokterm = Path(sys.executable).parent / "grokterm"
    assert grokterm.exists(), "the console script is installed with the package"
    tmux("new-session", "-d", "-s", "app", "-x", "100", "-y", "30", "-c", str(tmp_path),
         "-e", "TERM=xterm-256color", f"{grokterm} --db runs.db --presets presets")  # fmt: skip

    screen = tmux.wait_for("Grokking on a laptop CPU")  # the presets screen, demo's title
    assert "demo" in screen
    tmux("send-keys", "-t", "app", "w")  # sweeps
    tmux.wait_for("synth")
    tmux("send-keys", "-t", "app", "Enter")  # open it
    screen = tmux.wait_for("n_train=2600 d=8 seed=0")  # the run table, filled in
    assert "12/12 runs finished" in screen and "done" in screen
    tmux("send-keys", "-t", "app", "3")  # the phase map
    screen = tmux.wait_for("seeds disagree")  # its legend
    assert "d \\ n_train" in screen and "2600" in screen and "4000" in screen
    tmux("send-keys", "-t", "app", "q")  # no workers running: quits at once
    deadline = time.monotonic() + 15
    while tmux.alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not tmux.alive(), "the app did not quit"
