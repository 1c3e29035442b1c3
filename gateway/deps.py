"""FastAPI dependencies shared by the routes (service, settings, API-key check)."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Request

from gateway.errors import Unauthorized
from gateway.service import ColorizeService
from gateway.settings import Settings


def get_service(request: Request) -> ColorizeService:
    return request.app.state.service


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


def require_api_key(request: Request) -> None:
    keys = request.app.state.settings.api_keys
    if not keys:
        return
    header = request.headers.get("authorization", "")
    offered = (
        header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else request.headers.get("x-api-key", "")
    )
    if not any(secrets.compare_digest(offered, key) for key in keys):
        raise Unauthorized("send a valid API key as 'Authorization: Bearer <key>'")


ServiceDep = Annotated[ColorizeService, Depends(get_service)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
ApiKey = Depends(require_api_key)
