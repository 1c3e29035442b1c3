"""Gateway settings, read from the environment with the GATEWAY_ prefix."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every gateway knob; ``GATEWAY_<NAME>`` in the environment overrides the default."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", protected_namespaces=())

    backend: Literal["auto", "torchserve", "embedded"] = "auto"
    torchserve_url: str = "http://127.0.0.1:8080"
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    grpc_port: int = 50051
    weights_dir: Path | None = None
    models: list[str] = Field(default_factory=list, description="served model names; empty = every model with weights")
    result_store_url: str | None = Field(
        default=None,
        pattern=r"^((rediss?|unix)://.+)?$",
        description="redis://host:port/db: results in Redis, shared by every replica; unset = in result_dir",
    )
    result_dir: Path = Field(default=Path(".run/results"), description="results when no result_store_url is set")
    result_ttl_seconds: float = 600.0
    sweep_interval_seconds: float = 30.0
    max_upload_bytes: int = 25 * 1024 * 1024
    max_pixels: int = 50_000_000
    max_files: int = 5
    max_concurrent_requests: int = 32
    model_timeout_seconds: float = 60.0
    embedded_threads: int = 2
    api_keys: list[str] = Field(default_factory=list, description="if set, /v1 requires one as a Bearer token")
    # Per-key quotas (only with api_keys; 0 turns a limit off): see gateway/quotas.py.
    key_requests_per_minute: float = 120.0
    key_burst: int = 20
    key_max_concurrent: int = 8
    grpc_max_message_bytes: int = 64 * 1024 * 1024
    readiness_probe_seconds: float = 30.0


@lru_cache
def get_settings() -> Settings:
    return Settings()
