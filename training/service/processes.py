"""Trainer processes: is one still alive, how did it end, and signals to it or to its whole process group."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path


def alive(pid: int) -> bool:
    """The process exists and is not a zombie (a dead child nobody has reaped yet)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def signal_process(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def describe_exit(code: int | None) -> str:
    if code is None:
        return "the training process ended while the service was not watching it"
    if code < 0:
        try:
            return f"the trainer was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"the trainer was killed by signal {-code}"
    return f"the trainer exited with status {code}"


@dataclass
class TrainerProcess:
    """A running trainer: our child (``popen``), or one adopted from an earlier service process (pid only)."""

    pid: int
    popen: subprocess.Popen | None = None
    kill_at: float | None = None  # monotonic time of the SIGKILL that follows a cancel's SIGTERM

    def poll(self) -> tuple[bool, int | None]:
        """(still running, exit status); the status of an adopted process is unknown (None)."""
        if self.popen is not None:
            code = self.popen.poll()
            return code is None, code
        return alive(self.pid), None
