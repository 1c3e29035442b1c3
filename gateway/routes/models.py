"""GET /v1/models: the catalogue with readiness."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter

from gateway.deps import ApiKey, ServiceDep
from gateway.schemas import ModelList

router = APIRouter(prefix="/v1/models", tags=["models"], dependencies=[ApiKey])


@router.get("", response_model=ModelList, summary="List the served models")
async def list_models(service: ServiceDep) -> ModelList:
    return ModelList.model_validate({"models": [asdict(m) for m in service.models()]})
