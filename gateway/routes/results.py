"""GET/DELETE /v1/results/{id}: download or delete stored results before their TTL."""

from __future__ import annotations

import mimetypes

from fastapi import APIRouter, Response
from fastapi.responses import FileResponse

from gateway.deps import ApiKey, ServiceDep
from gateway.schemas import ErrorBody

router = APIRouter(prefix="/v1/results", tags=["results"], dependencies=[ApiKey])

mimetypes.add_type("image/webp", ".webp")


@router.get("/{result_id}/{name}", summary="Download one result", responses={404: {"model": ErrorBody}})
async def download(result_id: str, name: str, service: ServiceDep) -> FileResponse:
    path = service.store.path(result_id, name)
    media_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return FileResponse(path, media_type=media_type, filename=name, headers={"Cache-Control": "private, max-age=60"})


@router.delete("/{result_id}", status_code=204, summary="Delete a result now", responses={404: {"model": ErrorBody}})
async def delete(result_id: str, service: ServiceDep) -> Response:
    service.store.delete(result_id)
    return Response(status_code=204)
