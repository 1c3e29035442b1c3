"""GET/DELETE /v1/results/{id}: download or delete stored results before their TTL."""

from __future__ import annotations

import asyncio
import mimetypes

from fastapi import APIRouter, Response

from gateway.deps import ApiKey, ServiceDep
from gateway.schemas import ErrorBody

router = APIRouter(prefix="/v1/results", tags=["results"], dependencies=[ApiKey])

mimetypes.add_type("image/webp", ".webp")


@router.get(
    "/{result_id}/{name}",
    summary="Download one result",
    response_class=Response,
    responses={404: {"model": ErrorBody}, 503: {"model": ErrorBody}},
)
async def download(result_id: str, name: str, service: ServiceDep) -> Response:
    data = await asyncio.to_thread(service.store.read, result_id, name)  # disk or network: off the event loop
    media_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    headers = {"Cache-Control": "private, max-age=60", "Content-Disposition": f'attachment; filename="{name}"'}
    return Response(data, media_type=media_type, headers=headers)


@router.delete(
    "/{result_id}",
    status_code=204,
    summary="Delete a result now",
    responses={404: {"model": ErrorBody}, 503: {"model": ErrorBody}},
)
async def delete(result_id: str, service: ServiceDep) -> Response:
    await asyncio.to_thread(service.store.delete, result_id)
    return Response(status_code=204)
