"""The job manager: queue, trainer processes, packaging and the records on disk, on the app's event loop.

A supervisor task polls the trainers and starts queued jobs while slots are free. A restarted service reads the
records back: queued jobs queue again, trainers still running are adopted, those that died meanwhile are settled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
import signal
import subprocess
import time
from collections import deque
from dataclasses import asdict
from pathlib import Path
from typing import Any

from training.data import list_crops
from training.service.artifacts import archive_version, package_job, register_archive
from training.service.errors import Conflict, NotFound, Unprocessable
from training.service.jobs import (
    CANCELLED,
    FAILED,
    PACKAGING,
    QUEUED,
    RECORD_NAME,
    RUNNING,
    SUCCEEDED,
    CommandBuilder,
    Job,
    job_files,
    new_id,
    now,
    read_json,
    tail,
    train_command,
    write_json,
)
from training.service.processes import TrainerProcess, alive, describe_exit, signal_group, signal_process
from training.service.schemas import JobDetail, JobRequest, JobSummary, Registration
from training.service.views import job_view
from training.settings import REPO, Settings

log = logging.getLogger(__name__)

PACKAGING_WAIT_SECONDS = 10.0  # how long a stopping service lets an archive build finish


class JobManager:
    """Owns the jobs: queue, processes, packaging, the records on disk. Runs on the app's event loop."""

    def __init__(self, settings: Settings, *, command: CommandBuilder = train_command):
        self.settings = settings
        self.command = command
        self.jobs: dict[str, Job] = {}
        self.queue: deque[str] = deque()
        self.processes: dict[str, TrainerProcess] = {}
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
                signal_process(process.pid, signal.SIGTERM)
            deadline = time.monotonic() + self.settings.cancel_grace_seconds
            while any(p.poll()[0] for p in self.processes.values()) and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            for job_id, process in list(self.processes.items()):
                signal_group(process.pid, signal.SIGKILL)
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
                    process = TrainerProcess(job.pid)
                    if job.state == CANCELLED:
                        process.kill_at = time.monotonic() + self.settings.cancel_grace_seconds
                    self.processes[job.id] = process
                else:
                    self._trainer_ended(job, None)
            elif job.state == PACKAGING:
                self._spawn(self._package(job))

    def _is_our_trainer(self, job: Job) -> bool:
        """The pid is alive and its command line names this job's folder (pids are reused)."""
        if job.pid is None or not alive(job.pid):
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
        job = Job(id=new_id(), request=request.model_dump(by_alias=True), created=now())
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
            job.cancel_requested = now()
            self._end(job, CANCELLED)
            log.info("job %s: cancelled before it started", job.id)
        elif job.state == RUNNING:
            job.state, job.cancel_requested = CANCELLED, now()
            process = self.processes.get(job_id)
            if process is not None:
                # The trainer stops after its current step and saves a checkpoint; the whole process group is
                # killed when it takes longer than the grace period, and once the trainer has gone.
                if self.settings.cancel_grace_seconds > 0:
                    signal_process(process.pid, signal.SIGTERM)
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
        version = archive_version(archive)
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
                    signal_group(process.pid, signal.SIGKILL)
                    process.kill_at = None
                continue
            del self.processes[job_id]
            signal_group(process.pid, signal.SIGKILL)  # data loader workers or other children it left behind
            self._trainer_ended(self.jobs[job_id], code)
        while self.queue and len(self.processes) < self.settings.max_concurrent_jobs:
            self._launch(self.jobs[self.queue.popleft()])

    def _launch(self, job: Job) -> None:
        files = job_files(job, self.settings)
        files.root.mkdir(parents=True, exist_ok=True)
        command = self.command(job, self.settings)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        job.command, job.started = command, now()
        try:
            with files.log.open("ab") as out:
                out.write(f"{now()} $ {shlex.join(command)}\n".encode())
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
        self.processes[job.id] = TrainerProcess(popen.pid, popen)
        self._persist(job)
        log.info("job %s: started (pid %d)", job.id, popen.pid)

    def _trainer_ended(self, job: Job, code: int | None) -> None:
        files = job_files(job, self.settings)
        job.exit_code = code
        if job.state == CANCELLED:
            self._end(job, CANCELLED)
            log.info("job %s: the cancelled trainer has ended (%s)", job.id, describe_exit(code))
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
            error = describe_exit(code) + (f": {last.strip()[:300]}" if last else "")
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
        job.state, job.ended = state, now()
        if error is not None:
            job.error = error
        if job.registration.get("status", "pending") == "pending":
            detail = f"the job ended {state} without an archive"
            job.registration = Registration(status="skipped", detail=detail).model_dump()
        self._persist(job)

    def _persist(self, job: Job) -> None:
        write_json(job_files(job, self.settings).record, asdict(job))

    # --- views --------------------------------------------------------------------------------------------------

    def view(self, job: Job, *, detail: bool = False) -> JobSummary | JobDetail:
        """What a client sees of a job; its queue position is the manager's to know."""
        position = self.queue.index(job.id) if job.state == QUEUED and job.id in self.queue else None
        return job_view(job, self.settings, queue_position=position, detail=detail)

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys((QUEUED, RUNNING, PACKAGING, SUCCEEDED, FAILED, CANCELLED), 0)
        for job in self.jobs.values():
            counts[job.state] += 1
        return counts
