"""What a client sees of a job: its record merged with the trainer's progress.json, metrics and log tail.

The trainer writes progress.json on its own; reading it at each request keeps the job record free of numbers
that change every step.
"""

from __future__ import annotations

from typing import Any

from training.service.jobs import Job, job_files, read_json, tail
from training.service.schemas import Artifacts, JobDetail, JobSummary, Registration
from training.settings import Settings


def job_view(
    job: Job, settings: Settings, *, queue_position: int | None, detail: bool = False
) -> JobSummary | JobDetail:
    """The job record with the trainer's progress and latest metrics; ``detail`` adds history, log tail, paths."""
    files = job_files(job, settings)
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
        "queue_position": queue_position,
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
        log_tail=tail(files.log, settings.log_tail_lines),
        command=job.command,
        run_dir=str(files.run_dir),
        log=str(files.log),
    )


def _progress_summary(progress: dict[str, Any] | None) -> dict[str, Any] | None:
    if progress is None:
        return None
    # "weights" there is the trainer's own output folder; the job's artifacts say where the served weights are.
    return {k: v for k, v in progress.items() if k not in ("val", "val_history", "model", "variant", "weights")}
