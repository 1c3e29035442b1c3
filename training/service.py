"""Training HTTP API (``python -m training serve``): start training jobs, follow them, list the artifacts.

A job is one ``python -m training train ...`` process in its own process group, started by a supervisor
that keeps at most ``TRAINING_MAX_CONCURRENT_JOBS`` of them running (the rest wait in a queue). Everything
a job owns lives in ``RUNS_DIR/jobs/<id>/``:

    job.json        the job record (rewritten on every change; a restarted service reads it back)
    train.log       the trainer's stdout and stderr
    <model>/        the trainer's run directory: progress.json, checkpoint.pt, tensorboard/
    weights/        the weights and sidecar the trainer wrote

When the trainer ends well the job is *packaging*: its weights and sidecar are copied into
``MODEL_STORE/weights`` under the served name, the archive ``MODEL_STORE/<name>.mar`` is built and, when
``TRAINING_TORCHSERVE_MANAGEMENT_URL`` is set, registered with TorchServe and made the default version.
A registration that fails leaves the job *succeeded* with a warning (weights and archive are good; TorchServe
can load the archive later, ``POST /v1/jobs/{id}/register`` tries again); a failure before that fails the job.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from starlette.exceptions import HTTPException as StarletteHTTPException

from colorizers.registry import get_spec, list_models
from training.calibrate import calibrate
from training.data import list_crops
from training.package import build_archive, register, version_of
from training.recipes import RECIPES
from training.settings import REPO, Settings
from training.trainer import PROGRESS_NAME

log = logging.getLogger(__name__)

State = Literal["queued", "running", "packaging", "succeeded", "failed", "cancelled"]
QUEUED = "queued"
RUNNING = "running"
PACKAGING = "packaging"  # weights into the store, archive, registration
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"  # a TorchServe model name and a file name
RECORD_NAME = "job.json"
LOG_NAME = "train.log"
STAGING_NAME = "weights"
PACKAGING_WAIT_SECONDS = 10.0  # how long a stopping service lets an archive build finish


# --- errors ----------------------------------------------------------------------------------------------------


class ServiceError(Exception):
    """An error a client can act on: HTTP status, machine-readable code, human message."""

    http_status = 500
    code = "internal_error"

    def __init__(self, message: str, *, code: str | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}


class NotFound(ServiceError):
    http_status, code = 404, "not_found"


class Conflict(ServiceError):
    http_status, code = 409, "conflict"


class Unprocessable(ServiceError):
    http_status, code = 422, "invalid_request"


# --- request and response bodies -------------------------------------------------------------------------------


class JobRequest(BaseModel):
    """Body of ``POST /v1/jobs``: what to train, for how long (exactly one of minutes or steps), how to serve it."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str = Field(description="catalogue id with a training recipe", examples=["wallner-beta"])
    variant: str = Field("compact", description="model size: tiny, compact or full (where the model has it)")
    minutes: float | None = Field(None, ge=0.1, le=10080, description="wall-clock budget")
    steps: int | None = Field(None, ge=1, le=10_000_000, description="optimisation steps")
    batch_size: int | None = Field(None, ge=1, le=4096, description="default: the recipe's")
    lr: float | None = Field(None, gt=0, le=1, description="main learning rate; default: the recipe's")
    seed: int = Field(0, ge=0, le=2**31 - 1)
    synthetic: int | None = Field(
        None, ge=1, le=100_000, description="train on this many generated pictures instead of the data set"
    )
    name: str | None = Field(None, pattern=NAME_PATTERN, description="served name; default: the model id")
    register_version: bool = Field(
        True, alias="register", description="register the archive with TorchServe (when the service knows one)"
    )

    @model_validator(mode="after")
    def _consistent(self) -> JobRequest:
        if (self.minutes is None) == (self.steps is None):
            raise ValueError("give exactly one budget: minutes or steps")
        if self.model not in RECIPES:
            raise ValueError(f"no training recipe for model {self.model!r}; models: {', '.join(sorted(RECIPES))}")
        variants = next(s.variants for s in list_models() if s.id == self.model)
        if self.variant not in variants:
            raise ValueError(f"model {self.model!r} has no {self.variant!r} variant (has: {', '.join(variants)})")
        if self.name is None:
            self.name = self.model
        elif self.name != self.model and self.name in _reserved_names():
            raise ValueError(f"name {self.name!r} belongs to another model; pick another served name")
        return self


def _reserved_names() -> set[str]:
    """Catalogue ids and the ``<id>-x`` names of imported published weights."""
    ids = {s.id for s in list_models()}
    return ids | {f"{i}-x" for i in ids}


class Artifacts(BaseModel):
    weights: str | None = Field(None, description="the served weights in MODEL_STORE/weights")
    sidecar: str | None = None
    archive: str | None = Field(None, description="MODEL_STORE/<name>.mar")
    archive_version: str | None = None
    registered_version: str | None = Field(None, description="the version TorchServe serves as default")
    metrics: dict[str, Any] | None = Field(None, description="final validation metrics, as in the sidecar")


class Registration(BaseModel):
    status: Literal["pending", "skipped", "registered", "failed"] = "pending"
    detail: str | None = None
    version: str | None = None
    url: str | None = None


class JobSummary(BaseModel):
    id: str
    state: State
    model: str
    variant: str
    name: str = Field(description="served name")
    request: dict[str, Any]
    created: str
    started: str | None = None
    ended: str | None = None
    queue_position: int | None = Field(None, description="0: next to start (queued jobs only)")
    pid: int | None = None
    exit_code: int | None = None
    error: str | None = None
    warnings: list[str] = Field(default_factory=list)
    progress: dict[str, Any] | None = Field(None, description="the trainer's progress.json, without validations")
    metrics: dict[str, Any] | None = Field(None, description="the latest validation")
    artifacts: Artifacts
    registration: Registration


class JobDetail(JobSummary):
    metrics_history: list[dict[str, Any]] = Field(default_factory=list, description="every validation so far")
    log_tail: list[str] = Field(default_factory=list)
    command: list[str] = Field(default_factory=list, description="the training process's command line")
    run_dir: str
    log: str


class JobList(BaseModel):
    jobs: list[JobSummary]


# --- jobs --------------------------------------------------------------------------------------------------------


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


def job_files(job: Job, settings: Settings) -> JobFiles:
    return JobFiles(settings.jobs_dir / job.id, job.model)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


def _new_id() -> str:
    return f"{dt.datetime.now(dt.timezone.utc):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def _write_json(path: Path, data: dict[str, Any]) -> None:
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


def _alive(pid: int) -> bool:
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


def _killpg(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "the training process ended while the service was not watching it"
    if code < 0:
        try:
            return f"the trainer was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"the trainer was killed by signal {-code}"
    return f"the trainer exited with status {code}"


@dataclass
class _Process:
    """A running trainer: our child (``popen``), or one adopted from an earlier service process (pid only)."""

    pid: int
    popen: subprocess.Popen | None = None
    kill_at: float | None = None  # monotonic time of the SIGKILL that follows a cancel's SIGTERM

    def poll(self) -> tuple[bool, int | None]:
        if self.popen is not None:
            code = self.popen.poll()
            return code is None, code
        return _alive(self.pid), None


class JobManager:
    """Owns the jobs: queue, processes, packaging, the records on disk. Runs on the app's event loop."""

    def __init__(self, settings: Settings, *, command: CommandBuilder = train_command):
        self.settings = settings
        self.command = command
        self.jobs: dict[str, Job] = {}
        self.queue: deque[str] = deque()
        self.processes: dict[str, _Process] = {}
        self._wake = asyncio.Event()
        self._package_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task] = set()
        self._supervisor: asyncio.Task | None = None

    # --- life cycle ---------------------------------------------------------------------------------------------

    async def start(self) -> None:
        self.settings.jobs_dir.mkdir(parents=True, exist_ok=True)
        self._load()
        self._supervisor = asyncio.create_task(self._supervise(), name="training-job-supervisor")

    async def stop(self) -> None:
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.gather(self._supervisor, return_exceptions=True)
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=PACKAGING_WAIT_SECONDS)
            for task in list(self._tasks):
                task.cancel()  # the job stays "packaging" on disk and is packaged again at the next start
        if self.settings.stop_jobs_on_shutdown and self.processes:
            for process in self.processes.values():
                _signal(process.pid, signal.SIGTERM)
            deadline = time.monotonic() + self.settings.cancel_grace_seconds
            while any(p.poll()[0] for p in self.processes.values()) and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            for job_id, process in list(self.processes.items()):
                _killpg(process.pid, signal.SIGKILL)
                if process.popen is not None:
                    process.popen.wait()
                job = self.jobs[job_id]
                job.exit_code = process.poll()[1]
                if job.state == CANCELLED:
                    self._end(job, CANCELLED)
                else:
                    self._end(job, FAILED, "the training service stopped while the job ran")
            self.processes.clear()

    def _load(self) -> None:
        """Read the records back: queued jobs queue again, live trainers are adopted, dead ones are settled."""
        records = []
        for path in self.settings.jobs_dir.glob(f"*/{RECORD_NAME}"):
            data = read_json(path)
            try:
                records.append(Job.from_dict(data or {}))
            except (TypeError, KeyError) as exc:
                log.warning("ignoring the job record %s: %s", path, exc)
        for job in sorted(records, key=lambda j: (j.created, j.id)):
            self.jobs[job.id] = job
            if job.state == QUEUED:
                self.queue.append(job.id)
            elif job.state in (RUNNING, CANCELLED) and job.ended is None:
                if self._is_our_trainer(job):
                    log.info("job %s: adopting the running trainer (pid %d)", job.id, job.pid)
                    process = _Process(job.pid)
                    if job.state == CANCELLED:
                        process.kill_at = time.monotonic() + self.settings.cancel_grace_seconds
                    self.processes[job.id] = process
                else:
                    self._trainer_ended(job, None)
            elif job.state == PACKAGING:
                self._spawn(self._package(job))

    def _is_our_trainer(self, job: Job) -> bool:
        """The pid is alive and its command line names this job's folder (pids are reused)."""
        if job.pid is None or not _alive(job.pid):
            return False
        try:
            cmdline = Path(f"/proc/{job.pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            return False
        return str(job_files(job, self.settings).root) in cmdline.split("\0")

    # --- requests -----------------------------------------------------------------------------------------------

    def submit(self, request: JobRequest) -> Job:
        if request.synthetic is None and not list_crops(self.settings.data_dir, "train"):
            raise Unprocessable(
                f"no training crops in {self.settings.data_dir}: build the data set first "
                f"(python -m training dataset --data-dir {self.settings.data_dir}) or ask for synthetic pictures",
                code="no_dataset",
            )
        job = Job(id=_new_id(), request=request.model_dump(by_alias=True), created=_now())
        job.registration = Registration().model_dump()
        self.jobs[job.id] = job
        self.queue.append(job.id)
        self._persist(job)
        log.info("job %s: queued %s (%s)", job.id, job.model, job.request)
        self._tick()  # start it now when a slot is free, so the answer already says "running"
        return job

    def get(self, job_id: str) -> Job:
        try:
            return self.jobs[job_id]
        except KeyError:
            raise NotFound(f"no job {job_id!r}") from None

    def cancel(self, job_id: str) -> Job:
        job = self.get(job_id)
        if job.state == QUEUED:
            self.queue.remove(job_id)
            job.cancel_requested = _now()
            self._end(job, CANCELLED)
            log.info("job %s: cancelled before it started", job.id)
        elif job.state == RUNNING:
            job.state, job.cancel_requested = CANCELLED, _now()
            process = self.processes.get(job_id)
            if process is not None:
                # The trainer stops after its current step and saves a checkpoint; the whole process group is
                # killed when it takes longer than the grace period, and once the trainer has gone.
                if self.settings.cancel_grace_seconds > 0:
                    _signal(process.pid, signal.SIGTERM)
                process.kill_at = time.monotonic() + self.settings.cancel_grace_seconds
            self._persist(job)
            self._wake.set()
            log.info("job %s: cancelled while running", job.id)
        elif job.state != CANCELLED:
            raise Conflict(f"job {job_id!r} is {job.state} and cannot be cancelled")
        return job

    async def register_again(self, job_id: str) -> Job:
        """Register a succeeded job's archive with TorchServe (after a registration that failed)."""
        job = self.get(job_id)
        if job.state != SUCCEEDED or not job.artifacts.get("archive"):
            raise Conflict(f"job {job_id!r} is {job.state} and has no archive to register")
        if self.settings.torchserve_management_url is None:
            raise Conflict("TRAINING_TORCHSERVE_MANAGEMENT_URL is not set")
        archive = Path(job.artifacts["archive"])
        version = _archive_version(archive)
        if version != job.artifacts.get("archive_version"):
            raise Conflict(f"{archive} is no longer this job's archive (version {version}); register that job instead")
        async with self._package_lock:
            job.registration = await asyncio.to_thread(register_archive, self.settings, archive)
        self._persist(job)
        return job

    # --- supervision --------------------------------------------------------------------------------------------

    async def _supervise(self) -> None:
        while True:
            try:
                self._tick()
            except Exception:
                log.exception("the job supervisor failed a round")
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.settings.poll_seconds)

    def _tick(self) -> None:
        now = time.monotonic()
        for job_id, process in list(self.processes.items()):
            alive, code = process.poll()
            if alive:
                if process.kill_at is not None and now >= process.kill_at:
                    log.warning("job %s: the trainer did not stop in time; killing its process group", job_id)
                    _killpg(process.pid, signal.SIGKILL)
                    process.kill_at = None
                continue
            del self.processes[job_id]
            _killpg(process.pid, signal.SIGKILL)  # data loader workers or other children it left behind
            self._trainer_ended(self.jobs[job_id], code)
        while self.queue and len(self.processes) < self.settings.max_concurrent_jobs:
            self._launch(self.jobs[self.queue.popleft()])

    def _launch(self, job: Job) -> None:
        files = job_files(job, self.settings)
        files.root.mkdir(parents=True, exist_ok=True)
        command = self.command(job, self.settings)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        job.command, job.started = command, _now()
        try:
            with files.log.open("ab") as out:
                out.write(f"{_now()} $ {shlex.join(command)}\n".encode())
                out.flush()
                popen = subprocess.Popen(
                    command,
                    cwd=REPO,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group, so a cancel reaches every process it starts
                )
        except OSError as exc:
            self._end(job, FAILED, f"could not start the trainer: {exc}")
            return
        job.state, job.pid = RUNNING, popen.pid
        self.processes[job.id] = _Process(popen.pid, popen)
        self._persist(job)
        log.info("job %s: started (pid %d)", job.id, popen.pid)

    def _trainer_ended(self, job: Job, code: int | None) -> None:
        files = job_files(job, self.settings)
        job.exit_code = code
        if job.state == CANCELLED:
            self._end(job, CANCELLED)
            log.info("job %s: the cancelled trainer has ended (%s)", job.id, _describe_exit(code))
            return
        progress = read_json(files.progress) or {}
        finished = code == 0 if code is not None else progress.get("status") == "finished"
        if finished and (files.staging / f"{job.model}.safetensors").exists():
            job.state = PACKAGING
            self._persist(job)
            self._spawn(self._package(job))
            return
        if progress.get("error"):
            error = f"training failed: {progress['error']}"
        elif progress.get("status") == "stopped":
            error = "the trainer was stopped from outside the service before the end of its budget"
        elif finished:
            error = "the trainer ended without writing weights"
        else:
            last = next((line for line in reversed(tail(files.log, 20)) if line.strip()), "")
            error = _describe_exit(code) + (f": {last.strip()[:300]}" if last else "")
        self._end(job, FAILED, error)
        log.warning("job %s: failed: %s", job.id, error)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _package(self, job: Job) -> None:
        async with self._package_lock:  # one archive build (and TorchServe registration) at a time
            try:
                artifacts, registration = await asyncio.to_thread(package_job, job, self.settings)
            except Exception as exc:
                log.exception("job %s: packaging failed", job.id)
                self._end(job, FAILED, f"packaging failed: {type(exc).__name__}: {exc}")
            else:
                job.artifacts, job.registration = artifacts, registration
                self._end(job, SUCCEEDED)
                log.info("job %s: succeeded: %s (registration: %s)", job.id, artifacts["archive"], registration)

    def _end(self, job: Job, state: str, error: str | None = None) -> None:
        job.state, job.ended = state, _now()
        if error is not None:
            job.error = error
        if job.registration.get("status", "pending") == "pending":
            detail = f"the job ended {state} without an archive"
            job.registration = Registration(status="skipped", detail=detail).model_dump()
        self._persist(job)

    def _persist(self, job: Job) -> None:
        _write_json(job_files(job, self.settings).record, asdict(job))

    # --- views --------------------------------------------------------------------------------------------------

    def view(self, job: Job, *, detail: bool = False) -> JobSummary | JobDetail:
        files = job_files(job, self.settings)
        progress = read_json(files.progress)
        history = (progress or {}).get("val_history") or []
        registration = Registration(**job.registration) if job.registration else Registration()
        summary: dict[str, Any] = {
            "id": job.id,
            "state": job.state,
            "model": job.model,
            "variant": job.request.get("variant", "compact"),
            "name": job.name,
            "request": job.request,
            "created": job.created,
            "started": job.started,
            "ended": job.ended,
            "queue_position": self.queue.index(job.id) if job.state == QUEUED and job.id in self.queue else None,
            "pid": job.pid,
            "exit_code": job.exit_code,
            "error": job.error,
            "warnings": [registration.detail] if registration.status == "failed" and registration.detail else [],
            "progress": _progress_summary(progress),
            "metrics": (progress or {}).get("val"),
            "artifacts": Artifacts(**job.artifacts, registered_version=registration.version),
            "registration": registration,
        }
        if not detail:
            return JobSummary(**summary)
        return JobDetail(
            **summary,
            metrics_history=history,
            log_tail=tail(files.log, self.settings.log_tail_lines),
            command=job.command,
            run_dir=str(files.run_dir),
            log=str(files.log),
        )

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys((QUEUED, RUNNING, PACKAGING, SUCCEEDED, FAILED, CANCELLED), 0)
        for job in self.jobs.values():
            counts[job.state] += 1
        return counts


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def _progress_summary(progress: dict[str, Any] | None) -> dict[str, Any] | None:
    if progress is None:
        return None
    # "weights" there is the trainer's own output folder; the job's artifacts say where the served weights are.
    return {k: v for k, v in progress.items() if k not in ("val", "val_history", "model", "variant", "weights")}


# --- packaging -----------------------------------------------------------------------------------------------------


def publish_weights(staging: Path, model: str, name: str, weights_dir: Path, job_id: str) -> tuple[Path, dict]:
    """Copy the trainer's weights + sidecar into the weights folder under the served name (each file atomically)."""
    source = staging / f"{model}.safetensors"
    sidecar = json.loads((staging / f"{model}.json").read_text())
    sidecar.update(name=name, job=job_id)
    weights_dir.mkdir(parents=True, exist_ok=True)
    target = weights_dir / f"{name}.safetensors"
    tmp = weights_dir / f".{name}.safetensors.{job_id}.tmp"
    if name == model:
        shutil.copyfile(source, tmp)
    else:
        with safe_open(str(source), framework="pt") as f:
            metadata = dict(f.metadata() or {})
        save_file(load_file(str(source)), str(tmp), metadata={**metadata, "name": name})
    sidecar["bytes"] = tmp.stat().st_size
    os.replace(tmp, target)
    _write_json(target.with_suffix(".json"), sidecar)
    return target, sidecar


def register_archive(settings: Settings, archive: Path) -> dict[str, Any]:
    """Register with TorchServe's management API; the outcome as a registration record (never raises)."""
    url = settings.torchserve_management_url
    if url is None:
        return Registration(status="skipped", detail="TRAINING_TORCHSERVE_MANAGEMENT_URL is not set").model_dump()
    try:
        version = register(url, archive, workers=settings.register_workers, timeout=settings.register_timeout_seconds)
    except Exception as exc:
        detail = f"registering {archive.name} with TorchServe at {url} failed: {type(exc).__name__}: {exc}"
        log.warning("%s", detail)
        return Registration(status="failed", detail=detail, url=url).model_dump()
    return Registration(status="registered", version=version, url=url).model_dump()


def package_job(job: Job, settings: Settings) -> tuple[dict[str, Any], dict[str, Any]]:
    """Weights into the store, the archive beside them, the registration: (artifacts, registration)."""
    files = job_files(job, settings)
    weights_path, sidecar = publish_weights(files.staging, job.model, job.name, settings.weights_dir, job.id)
    calibration_photos = settings.data_dir / "unseen_photos"
    calibration = None
    if sidecar.get("backbone") and not get_spec(job.model).needs_reference and calibration_photos.is_dir():
        # A compact model decodes with a floor and gain fitted on the held-out-package photos.
        calibration = calibrate(job.name, calibration_photos, settings.weights_dir)["chosen"]
    archive = build_archive(job.name, weights_dir=settings.weights_dir, export_dir=settings.model_store)
    artifacts = {
        "weights": str(weights_path),
        "sidecar": str(weights_path.with_suffix(".json")),
        "archive": str(archive),
        "archive_version": version_of(sidecar),
        "metrics": sidecar.get("metrics"),
        "calibration": calibration,
    }
    if job.request.get("register", True):
        registration = register_archive(settings, archive)
    else:
        registration = Registration(status="skipped", detail="the job asked not to register").model_dump()
    return artifacts, registration


# --- artifacts -------------------------------------------------------------------------------------------------


def _archive_version(archive: Path) -> str | None:
    try:
        with zipfile.ZipFile(archive) as zf:
            return json.loads(zf.read("MAR-INF/MANIFEST.json"))["model"]["modelVersion"]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None


def list_artifacts(settings: Settings) -> dict[str, list[dict[str, Any]]]:
    """Weights (with their sidecars) and archives (with their manifest and the sidecar inside) in the store."""
    weights = []
    for sidecar_path in sorted(settings.weights_dir.glob("*.json")):
        path = sidecar_path.with_suffix(".safetensors")
        if not path.exists():
            continue
        entry: dict[str, Any] = {"name": sidecar_path.stem, "file": str(path), "bytes": path.stat().st_size}
        sidecar = read_json(sidecar_path)
        entry.update({"sidecar": sidecar} if sidecar is not None else {"error": "unreadable sidecar"})
        weights.append(entry)
    archives = []
    for path in sorted(settings.model_store.glob("*.mar")):
        stat = path.stat()
        entry = {
            "name": path.stem,
            "file": str(path),
            "bytes": stat.st_size,
            "modified": dt.datetime.fromtimestamp(stat.st_mtime, dt.timezone.utc).isoformat(timespec="seconds"),
        }
        try:
            with zipfile.ZipFile(path) as zf:
                manifest = json.loads(zf.read("MAR-INF/MANIFEST.json"))
                model = manifest.get("model", {})
                name = model.get("modelName", path.stem)
                inside = set(zf.namelist())
                sidecar = json.loads(zf.read(f"{name}.json")) if f"{name}.json" in inside else None
            entry.update(name=name, version=model.get("modelVersion"), handler=model.get("handler"), sidecar=sidecar)
        except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
            entry["error"] = f"unreadable archive: {exc}"
        archives.append(entry)
    return {"weights": weights, "archives": archives}


# --- HTTP ----------------------------------------------------------------------------------------------------------


def get_manager(request: Request) -> JobManager:
    return request.app.state.manager


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


Manager = Annotated[JobManager, Depends(get_manager)]
CurrentSettings = Annotated[Settings, Depends(get_settings)]

jobs_router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
artifacts_router = APIRouter(prefix="/v1/artifacts", tags=["artifacts"])
health_router = APIRouter(tags=["health"])


@jobs_router.post("", status_code=201, response_model=JobDetail)
async def create_job(body: JobRequest, manager: Manager) -> JSONResponse:
    """Queue a training job; it starts at once when fewer than MAX_CONCURRENT_JOBS are running."""
    job = manager.submit(body)
    view = manager.view(job, detail=True)
    return JSONResponse(view.model_dump(mode="json"), status_code=201, headers={"Location": f"/v1/jobs/{job.id}"})


@jobs_router.get("", response_model=JobList)
async def list_jobs(manager: Manager, state: Annotated[State | None, Query()] = None) -> JobList:
    """Every job the service knows, newest first (optionally only those in one state)."""
    jobs = sorted(manager.jobs.values(), key=lambda j: (j.created, j.id), reverse=True)
    return JobList(jobs=[manager.view(j) for j in jobs if state is None or j.state == state])


@jobs_router.get("/{job_id}", response_model=JobDetail)
async def get_job(job_id: str, manager: Manager) -> JobSummary | JobDetail:
    """State, progress (progress.json), latest metrics, log tail and artifacts of one job."""
    return manager.view(manager.get(job_id), detail=True)


@jobs_router.delete("/{job_id}", response_model=JobDetail)
async def cancel_job(job_id: str, manager: Manager) -> JobSummary | JobDetail:
    """Cancel a queued or running job (the trainer gets SIGTERM, its process group SIGKILL after the grace time)."""
    return manager.view(manager.cancel(job_id), detail=True)


@jobs_router.post("/{job_id}/register", response_model=JobDetail)
async def register_job(job_id: str, manager: Manager) -> JobSummary | JobDetail:
    """Register a succeeded job's archive with TorchServe again (after a registration that failed)."""
    return manager.view(await manager.register_again(job_id), detail=True)


@artifacts_router.get("")
def artifacts(settings: CurrentSettings) -> dict[str, list[dict[str, Any]]]:
    """Weights in MODEL_STORE/weights (with their sidecars) and archives in MODEL_STORE (manifest, sidecar)."""
    return list_artifacts(settings)


@health_router.get("/healthz")
async def healthz(manager: Manager) -> dict[str, Any]:
    """The process is up; how many jobs are in each state."""
    return {"status": "ok", "jobs": manager.counts()}


def _error_response(error: ServiceError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.http_status)


def _validation_message(exc: RequestValidationError) -> str:
    problems = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ())[1:]) or "request"
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        problems.append(f"{where}: {message}")
    return "; ".join(problems) or "invalid request"


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return _error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error_response(Unprocessable(_validation_message(exc)))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        error = ServiceError(str(exc.detail), code="not_found" if exc.status_code == 404 else "http_error")
        error.http_status = exc.status_code
        return _error_response(error)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _error_response(ServiceError("internal error; the training service log has the details"))


def create_app(settings: Settings | None = None, *, command: CommandBuilder = train_command) -> FastAPI:
    """The training API; ``command`` builds each job's process command line (tests swap the trainer out)."""
    settings = settings or Settings()
    manager = JobManager(settings, command=command)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await manager.start()
        log.info("training service: %d jobs on record in %s", len(manager.jobs), settings.jobs_dir)
        try:
            yield
        finally:
            await manager.stop()

    app = FastAPI(
        title="Colourisation training service",
        version="1.0",
        description="Start training jobs, follow their progress and metrics, list weights and archives.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.manager = manager
    for router in (jobs_router, artifacts_router, health_router):
        app.include_router(router)
    _install_error_handlers(app)
    return app


def main(args: argparse.Namespace | None = None) -> int:
    """``python -m training serve``: the API under uvicorn, settings from TRAINING_* (``--host``/``--port`` win)."""
    import uvicorn

    overrides = {k: getattr(args, k) for k in ("host", "port") if getattr(args, k, None) is not None}
    settings = Settings(**overrides)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    print(
        f"training service on http://{settings.host}:{settings.port}/ (API docs at /docs); jobs in "
        f"{settings.jobs_dir}, archives in {settings.model_store}",
        flush=True,
    )
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info")
    return 0
