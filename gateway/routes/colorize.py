"""POST /v1/colorize: one or more photos through one model or all of them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, Response, UploadFile
from fastapi.responses import JSONResponse

from colorizers import imaging
from gateway.deps import ApiKey, ClientDep, ServiceDep
from gateway.errors import PayloadTooLarge
from gateway.schemas import ColorizeResponse, ErrorBody
from gateway.service import AUTO, ColorizeResult, Options, Upload

router = APIRouter(prefix="/v1", tags=["colorize"], dependencies=[ApiKey])

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 401, 404, 413, 415, 422, 429, 502, 503, 504)
}


@router.post(
    "/colorize",
    response_model=ColorizeResponse,
    summary="Colourise photos",
    responses={**ERRORS, 200: {"content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}}}},
)
async def colorize(
    request: Request,
    service: ServiceDep,
    client: ClientDep,
    images: Annotated[list[UploadFile], File(description="1-5 photos; exactly 1 with model=all")],
    model: Annotated[str, Form(description="a model id from /v1/models, or 'all'")] = "all",
    format: Annotated[
        str,
        Form(
            description="auto (the image type an Accept header names first; else JPEG for a JPEG, WebP for a WebP "
            "without alpha, PNG for anything else), png, jpeg or webp"
        ),
    ] = AUTO,
    hints: Annotated[str | None, Form(description='JSON [{"x":0.5,"y":0.3,"color":"#3366cc"}] (hint models)')] = None,
    seed: Annotated[int | None, Form(description="seed for models with diverse outputs")] = None,
    size: Annotated[int | None, Form(description="working resolution of the model pass, 32-1024")] = None,
    reference: Annotated[
        UploadFile | None,
        File(description="a colour photo of the same scene or person, for models that take one (exemplar)"),
    ] = None,
) -> Response:
    limit = service.settings.max_upload_bytes
    uploads = []
    for image in images:
        if image.size is not None and image.size > limit:
            raise PayloadTooLarge(f"{image.filename}: the file is larger than {limit / 2**20:g} MiB")
        uploads.append(Upload(image.filename or "image", await image.read(limit + 1)))
    reference_data = None
    if reference is not None:
        if reference.size is not None and reference.size > limit:
            raise PayloadTooLarge(f"reference photo: the file is larger than {limit / 2**20:g} MiB")
        reference_data = await reference.read(limit + 1)
        if not reference_data and not reference.filename:  # a form's file field left empty: no reference
            reference_data = None
    fmt = _format(format, request)
    options = Options(model=model, format=fmt, hints=hints or None, seed=seed, size=size, reference=reference_data)
    result = await service.colorize(uploads, options, client=client)
    error = result.first_error()
    if error is not None:
        raise error
    if _wants_image(request) and len(result.files) == 1 and len(result.files[0].outputs) == 1:
        output = result.files[0].outputs[0]
        url = f"/v1/results/{result.id}/{output.name}"
        return Response(output.data, media_type=output.media_type, headers={"Content-Location": url})
    return JSONResponse(_body(result).model_dump())


def _wants_image(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return accept.startswith("image/")


def _format(asked: str, request: Request) -> str:
    """The form's format; "auto" yields to the image type the Accept header puts first (``Accept: image/png``)."""
    fmt = asked.lower()
    if fmt != AUTO:
        return fmt
    first = request.headers.get("accept", "").split(",")[0].split(";")[0].strip().lower()
    return next((name for name, media_type in imaging.MEDIA_TYPES.items() if media_type == first), AUTO)


def _body(result: ColorizeResult) -> ColorizeResponse:
    files = []
    for entry in result.files:
        outputs = []
        for o in entry.outputs:
            outputs.append(
                {
                    "model": o.model,
                    "status": o.status,
                    "latency_ms": o.latency_ms,
                    "url": f"/v1/results/{result.id}/{o.name}" if o.name else None,
                    "media_type": o.media_type,
                    "error": o.error.body()["error"] if o.error else None,
                }
            )
        files.append({"filename": entry.filename, "width": entry.width, "height": entry.height, "outputs": outputs})
    return ColorizeResponse.model_validate({"id": result.id, "expires_at": result.expires_at, "files": files})
