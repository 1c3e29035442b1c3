"""JSON shapes of the REST API (they document themselves at /docs)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorDetail(BaseModel):
    code: str = Field(examples=["unsupported_image"])
    message: str = Field(examples=["The file is not a supported image (JPEG, PNG, WebP, TIFF, BMP or GIF)."])


class ErrorBody(BaseModel):
    error: ErrorDetail


class ModelEntry(BaseModel):
    id: str
    family: str
    architecture: str
    description: str
    working_size: int
    supports_hints: bool
    supports_seed: bool
    supports_reference: bool = Field(default=False, description="takes a colour reference photo ('reference')")
    needs_reference: bool = Field(default=False, description="refuses a request without a reference photo")
    provenance: str = Field(description="trained (here), imported (published weights) or untrained")
    backbone: str | None = Field(
        default=None, description="the frozen ImageNet-pretrained encoder the model stands on, if any"
    )
    paper: str
    metrics: dict[str, Any]
    ready: bool
    reason: str


class ModelList(BaseModel):
    models: list[ModelEntry]


class OutputEntry(BaseModel):
    model: str
    status: str = Field(description="ok, error or timeout")
    latency_ms: float
    url: str | None = None
    media_type: str | None = None
    error: ErrorDetail | None = None


class FileEntry(BaseModel):
    filename: str
    width: int
    height: int
    outputs: list[OutputEntry]


class ColorizeResponse(BaseModel):
    id: str
    expires_at: float = Field(description="Unix time after which the results are deleted")
    files: list[FileEntry]
