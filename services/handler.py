"""Thin TorchServe handler: decode -> colorizers.pipeline -> PNG, one response per request in a batch."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import torch

from colorizers import imaging
from colorizers.pipeline import Colorizer, RequestError, WorkItem

log = logging.getLogger(__name__)


class ColorizerHandler:
    """Loads ``<model>.safetensors`` + sidecar from the archive; answers each request with a PNG.

    A request carries the image as its body (or multipart field ``data``) and optional fields
    ``hints`` (JSON), ``seed``, ``size`` and ``reference`` (a colour reference photo's file bytes, for models
    that take one; a model that needs one answers 400 without it). Any image is accepted; the gateway sends the
    grey image at the model's working size, so the returned PNG is the colour image at that size. The sidecar's
    ``conventions`` (imported "-x" weights) decide how the grey picture is made and what comes back: for a
    DeOldify ``-x`` model the generator's own RGB at the render size, which the caller merges in YCbCr.
    """

    def __init__(self) -> None:
        self.colorizer: Colorizer | None = None
        self.initialized = False

    def initialize(self, context: Any) -> None:
        properties = context.system_properties
        model_dir = Path(properties.get("model_dir", "."))
        sidecars = sorted(model_dir.glob("*.json"))
        if len(sidecars) != 1:
            raise RuntimeError(f"expected exactly one weights sidecar in the archive, found {len(sidecars)}")
        gpu_id = properties.get("gpu_id")
        device = f"cuda:{gpu_id}" if torch.cuda.is_available() and gpu_id is not None else "cpu"
        if device == "cpu":
            torch.set_num_threads(cpu_threads())
        name = json.loads(sidecars[0].read_text())["name"]
        self.colorizer = Colorizer.load(name, model_dir, device)
        self.initialized = True
        log.info("loaded %s on %s", name, device)

    def handle(self, data: list[dict[str, Any]], context: Any) -> list[bytes]:
        assert self.colorizer is not None, "initialize() was not called"
        responses: list[bytes] = [b""] * len(data)
        items: list[WorkItem] = []
        positions: list[int] = []
        for index, request in enumerate(data):
            try:
                items.append(self._work_item(request))
                positions.append(index)
            except (imaging.ImageError, RequestError) as exc:
                responses[index] = _error(context, index, 400, getattr(exc, "code", "bad_request"), str(exc))
        if items:
            try:
                images = self.colorizer.colorize_working_batch(items)
            except Exception as exc:  # a model failure fails this batch's requests, never the worker
                log.exception("model %s failed", self.colorizer.name)
                for index in positions:
                    responses[index] = _error(context, index, 500, "model_error", f"model failed: {exc}")
                return responses
            for index, image in zip(positions, images, strict=True):
                responses[index] = imaging.encode(image, "png")
                context.set_response_content_type(index, imaging.MEDIA_TYPES["png"])
        return responses

    def _work_item(self, request: dict[str, Any]) -> WorkItem:
        assert self.colorizer is not None
        body = request.get("data") or request.get("body") or b""
        if not isinstance(body, (bytes, bytearray)):
            raise RequestError("the request body must be an image")
        return self.colorizer.prepare(
            bytes(body),
            hints=_text(request.get("hints")),
            seed=_int(request.get("seed"), "seed"),
            size=_int(request.get("size"), "size"),
            reference=_bytes(request.get("reference")),
        )


def cpu_threads() -> int:
    """Torch threads per CPU worker: ``COLORIZERS_TORCH_THREADS``, default 1.

    TorchServe runs one process per worker and every model has its own workers, so torch's default (one thread
    per core in every process) oversubscribes the cores as soon as two models work at once.
    """
    raw = os.environ.get("COLORIZERS_TORCH_THREADS", "1")
    try:
        threads = int(raw)
    except ValueError:
        raise RuntimeError(f"COLORIZERS_TORCH_THREADS must be a whole number, got {raw!r}") from None
    if threads < 1:
        raise RuntimeError(f"COLORIZERS_TORCH_THREADS must be at least 1, got {threads}")
    return threads


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, (bytes, bytearray)) else str(value)


def _bytes(value: Any) -> bytes | None:
    if value is None or value == b"" or value == "":
        return None
    if isinstance(value, str):
        raise RequestError("the reference must be an image file")
    return bytes(value)


def _int(value: Any, name: str) -> int | None:
    text = _text(value)
    if text is None or text == "":
        return None
    try:
        return int(text)
    except ValueError:
        raise RequestError(f"{name} must be a whole number, got {text!r}") from None


def _error(context: Any, index: int, status: int, code: str, message: str) -> bytes:
    context.set_response_status(status, message, index)
    context.set_response_content_type(index, "application/json")
    return json.dumps({"error": {"code": code, "message": message}}).encode()


_service = ColorizerHandler()


def handle(data: list[dict[str, Any]] | None, context: Any) -> list[bytes] | None:
    """TorchServe entry point (module-level function form)."""
    if not _service.initialized:
        _service.initialize(context)
    if data is None:
        return None
    return _service.handle(data, context)
