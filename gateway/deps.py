"""FastAPI dependencies shared by the routes (service, settings, API-key check)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from gateway.auth import client_for
from gateway.service import ColorizeService
from gateway.settings import Settings


def get_service(request: Request) -> ColorizeService:
    return request.app.state.service


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


def require_api_key(request: Request) -> str | None:
    """The client: the fingerprint of the API key the request offers (None when the gateway has no keys)."""
    header = request.headers.get("authorization", "")
    offered = (
        header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else request.headers.get("x-api-key", "")
    )
    return client_for(offered, request.app.state.settings.api_keys, how="'Authorization: Bearer <key>'")


ServiceDep = Annotated[ColorizeService, Depends(get_service)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
ApiKey = Depends(require_api_key)
ClientDep = Annotated[str | None, ApiKey]
