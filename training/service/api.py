"""The training API's routes, error handlers and app (``create_app``), and ``python -m training serve`` (``main``)."""

from __future__ import annotations

import argparse
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from training.service.artifacts import list_artifacts
from training.service.errors import ServiceError, Unprocessable
from training.service.jobs import CommandBuilder, State, train_command
from training.service.manager import JobManager
from training.service.schemas import JobDetail, JobList, JobRequest, JobSummary
from training.settings import Settings

log = logging.getLogger(__name__)


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
