"""Which process a PID is: a token that tells a live process from a later one given the
same PID (after a crash or a reboot), so a signal only ever reaches our own workers."""

from __future__ import annotations

import subprocess
from pathlib import Path

# A worker's exit status when it stopped because it was asked to (SIGTERM: the app's
# `x`, a Ctrl-C), after saving its cohort: a backend does not replace such a worker.
STOPPED_EXIT = 143  # 128 + SIGTERM, as a shell reports a process ended by it


def token(pid: int) -> str | None:
    """The process's boot and start time (Linux), else its start time and command line
    as `ps` shows them; None when no process has this PID."""
    stat = Path(f"/proc/{pid}/stat")
    if Path("/proc/self/stat").exists():
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        except OSError:
            return None
        return f"{boot}:{fields[19]}"  # field 22 of stat: start time in clock ticks
    out = subprocess.run(["ps", "-o", "lstart=,command=", "-p", str(pid)],
                         capture_output=True, text=True)  # fmt: skip
    return out.stdout.strip() or None
