"""FastAPI application factory: wires settings, backend, store and service; maps errors once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from colorizers import imaging
from gateway import metrics
from gateway.backends import Backend, EmbeddedBackend, TorchServeBackend
from gateway.catalogue import build_catalogue
from gateway.errors import GatewayError, Unprocessable, from_exception
from gateway.grpc_server import start_grpc_server
from gateway.middleware import ResponseMiddleware
from gateway.routes import colorize, health, models, results
from gateway.service import ColorizeService
from gateway.settings import Settings
from gateway.store import open_store

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).parent / "web"


async def choose_backend(settings: Settings, model_names: list[str]) -> Backend:
    """``auto`` uses TorchServe when it answers /ping, else the embedded backend (and says so)."""
    if settings.backend in ("torchserve", "auto"):
        backend = TorchServeBackend(settings.torchserve_url)
        await backend.start()
        if settings.backend == "torchserve" or await backend.reachable():
            return backend
        await backend.close()
        log.warning("TorchServe does not answer at %s: serving from the embedded backend", settings.torchserve_url)
    embedded = EmbeddedBackend(model_names, settings.weights_dir, threads=settings.embedded_threads)
    await embedded.start()
    return embedded


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        catalogue = build_catalogue(settings)
        backend = await choose_backend(settings, list(catalogue))
        store = open_store(settings)
        service = ColorizeService(settings, backend, store, catalogue)
        app.state.service = service
        tasks = [
            asyncio.create_task(service.run_prober(), name="readiness-prober"),
            asyncio.create_task(store.run_sweeper(settings.sweep_interval_seconds), name="result-sweeper"),
            asyncio.create_task(asyncio.to_thread(imaging.warm_up_table_merge), name="merge-warm-up"),
        ]
        grpc_server = await start_grpc_server(service, settings) if settings.grpc_port else None
        log.info("gateway serving %d models from the %s backend; results in %s", len(catalogue), backend.name, store)
        try:
            yield
        finally:
            if grpc_server is not None:
                await grpc_server.stop(grace=2.0)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await backend.close()
            store.close()

    app = FastAPI(
        title="Colourisation gateway",
        version="1.0",
        description="Black-and-white photos in, colour photos out, from one model or all of them.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    for module in (models, colorize, results, health):
        app.include_router(module.router)
    _install_error_handlers(app)
    app.add_middleware(ResponseMiddleware, csp_exempt=tuple(p for p in (app.docs_url, app.redoc_url) if p))
    if WEB_DIR.is_dir():
        app.mount("/", StaticFiles(directory=WEB_DIR, html=True), name="web")
    return app


def _error_response(error: GatewayError) -> JSONResponse:
    metrics.ERRORS.labels(error.code).inc()
    headers = {"Retry-After": str(error.retry_after)} if error.retry_after else None
    return JSONResponse(error.body(), status_code=error.http_status, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(GatewayError)
    async def gateway_error(request: Request, exc: GatewayError) -> JSONResponse:
        return _error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or 'request'}: {e['msg']}" for e in exc.errors())
        return _error_response(Unprocessable(problems or "invalid request", code="invalid_request"))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        error = GatewayError(str(exc.detail), code="not_found" if exc.status_code == 404 else "http_error")
        error.http_status = exc.status_code
        return _error_response(error)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _error_response(from_exception(exc))
