"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.deps import ServiceDep

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz", summary="The backend and the result store answer, and models are ready")
async def readyz(service: ServiceDep) -> JSONResponse:
    ready, detail = await service.ready()
    models = {m.id: m.ready for m in service.models()}
    body = {
        "status": "ready" if ready else "not ready",
        "detail": detail,
        "backend": service.backend.name,
        "models": models,
    }
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/metrics", summary="Prometheus metrics")
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
