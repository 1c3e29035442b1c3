"""A job on disk: its record (``job.json``), where its files are, and the trainer command line it runs.

The record is the truth a restarted service starts from, so it is rewritten atomically on every change.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from training.settings import Settings
from training.trainer import PROGRESS_NAME

State = Literal["queued", "running", "packaging", "succeeded", "failed", "cancelled"]
QUEUED = "queued"
RUNNING = "running"
PACKAGING = "packaging"  # weights into the store, archive, registration
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"
RECORD_NAME = "job.json"
LOG_NAME = "train.log"
STAGING_NAME = "weights"


@dataclass
class Job:
    """The persisted record of one job (``job.json``)."""

    id: str
    request: dict[str, Any]
    created: str
    state: str = QUEUED
    started: str | None = None
    ended: str | None = None
    pid: int | None = None
    exit_code: int | None = None
    command: list[str] = field(default_factory=list)
    error: str | None = None
    cancel_requested: str | None = None
    artifacts: dict[str, Any] = field(default_factory=dict)
    registration: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @property
    def model(self) -> str:
        return self.request["model"]

    @property
    def name(self) -> str:
        return self.request.get("name") or self.model


@dataclass(frozen=True)
class JobFiles:
    """Where a job's files are."""

    root: Path
    model: str

    @property
    def record(self) -> Path:
        return self.root / RECORD_NAME

    @property
    def log(self) -> Path:
        return self.root / LOG_NAME

    @property
    def staging(self) -> Path:
        return self.root / STAGING_NAME

    @property
    def run_dir(self) -> Path:
        return self.root / self.model

    @property
    def progress(self) -> Path:
        return self.run_dir / PROGRESS_NAME


def job_files(job: Job, settings: Settings) -> JobFiles:
    return JobFiles(settings.jobs_dir / job.id, job.model)


def train_command(job: Job, settings: Settings) -> list[str]:
    """The trainer's command line for a job (run from the repository root)."""
    r, files = job.request, job_files(job, settings)
    command = [sys.executable, "-m", "training", "train", "--model", r["model"], "--variant", r["variant"]]
    command += ["--steps", str(r["steps"])] if r.get("steps") is not None else ["--minutes", repr(r["minutes"])]
    if r.get("synthetic"):
        command += ["--synthetic", str(r["synthetic"])]
    else:
        command += ["--data-dir", str(settings.data_dir)]
    if r.get("batch_size") is not None:
        command += ["--batch-size", str(r["batch_size"])]
    if r.get("lr") is not None:
        command += ["--lr", repr(r["lr"])]
    command += ["--seed", str(r.get("seed", 0)), "--run-dir", str(files.root), "--out", str(files.staging)]
    return [*command, "--no-progress"]


CommandBuilder = Callable[[Job, Settings], list[str]]


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


def new_id() -> str:
    """Sortable by creation time, unique without a counter that would have to survive restarts."""
    return f"{dt.datetime.now(dt.timezone.utc):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write atomically: a reader (or a restarted service) never sees half a record."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def tail(path: Path, lines: int) -> list[str]:
    """The last ``lines`` lines of a text file (empty when it does not exist)."""
    if lines <= 0:
        return []
    try:
        with path.open("rb") as f:
            size = f.seek(0, os.SEEK_END)
            start = max(0, size - 64 * 1024 - 200 * lines)
            f.seek(start)
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    found = text.splitlines()
    if start > 0 and found:
        found = found[1:]  # the first line is cut
    return found[-lines:]
