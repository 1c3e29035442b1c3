"""What a run shows while it runs: TensorBoard logs, the progress bar, and JSON files written atomically."""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

TENSORBOARD_DIR = "tensorboard"


class LossWindow:
    """The step losses since the last log, summed on the device: no host synchronisation on every step."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.sums: dict[str, torch.Tensor] = {}
        self.steps = 0

    def add(self, losses: Mapping[str, Any]) -> None:
        for name, value in losses.items():
            value = torch.as_tensor(value, dtype=torch.float32).detach().to(self.device)
            self.sums[name] = self.sums.get(name, torch.zeros((), device=self.device)) + value
        self.steps += 1

    def take(self) -> dict[str, float]:
        """The mean of each loss over the window, which starts again empty."""
        means = {k: float(v) / self.steps for k, v in self.sums.items()}
        self.sums, self.steps = {}, 0
        return means


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write through a temporary file, so a reader (the training service) never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str) + "\n")
    os.replace(tmp, path)


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def open_tensorboard(run_dir: Path, resume: bool, step: int) -> Any:
    """A TensorBoard writer in ``run_dir``, or None without tensorboard installed.

    A new run deletes the previous run's event files; a resumed one purges events from ``step`` on (written
    after the checkpoint it resumes from), so the curves do not double back.
    """
    folder = run_dir / TENSORBOARD_DIR
    if not resume and folder.is_dir():
        for old in folder.glob("events.out.tfevents.*"):
            old.unlink()
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is an optional extra
        log.warning("tensorboard is not installed: no TensorBoard logs")
        return None
    return SummaryWriter(str(folder), purge_step=step if resume else None)


def open_progress_bar(model: str, budget: Mapping[str, Any], step: int, elapsed: float) -> Any:
    """A tqdm bar in steps for a step budget, else in seconds of the time budget."""
    from tqdm import tqdm

    if budget.get("steps") is not None:
        return tqdm(total=budget["steps"], initial=step, unit="step", desc=model)
    total = round(60 * budget["minutes"])
    return tqdm(total=total, initial=min(total, round(elapsed)), unit="s", desc=model)


def show_progress(bar: Any, budget: Mapping[str, Any], step: int, elapsed: float, shown: Mapping[str, Any]) -> None:
    """Move the bar to ``step`` (or ``elapsed``) and show ``shown`` beside it."""
    if budget.get("steps") is not None:
        bar.n = min(step, bar.total)
    else:
        bar.n = min(bar.total, round(elapsed))
    bar.set_postfix(shown)


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), else what the platform module knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "CPU"
