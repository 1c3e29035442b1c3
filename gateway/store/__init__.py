"""Where results wait for their download: Redis when a URL is set (shared by every replica), else a folder."""

from __future__ import annotations

from gateway.settings import Settings
from gateway.store.base import ResultStore
from gateway.store.folder import FolderStore
from gateway.store.redis import RedisStore

__all__ = ["FolderStore", "RedisStore", "ResultStore", "open_store"]


def open_store(settings: Settings) -> ResultStore:
    if settings.result_store_url:
        return RedisStore(settings.result_store_url, settings.result_ttl_seconds)
    return FolderStore(settings.result_dir, settings.result_ttl_seconds)
