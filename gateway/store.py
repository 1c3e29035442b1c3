"""Result store: files under unguessable ids on disk, deleted after a TTL by a background sweeper."""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import shutil
import tempfile
import time
from pathlib import Path

from gateway.errors import NotFound

log = logging.getLogger(__name__)

_ID = re.compile(r"^[A-Za-z0-9_-]{32}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")
_EXPIRES = ".expires"


class ResultStore:
    """One folder per result id holding its files and an expiry stamp; safe to share between replicas."""

    def __init__(self, directory: Path | None, ttl_seconds: float):
        self.directory = Path(directory or tempfile.mkdtemp(prefix="colorizer-results-"))
        self.directory.mkdir(parents=True, exist_ok=True)
        self.ttl = ttl_seconds

    @staticmethod
    def new_id() -> str:
        return secrets.token_urlsafe(24)  # 32 characters, 192 random bits

    def expires_at(self) -> float:
        return time.time() + self.ttl

    def put(self, result_id: str, name: str, data: bytes, expires_at: float) -> None:
        folder = self._folder(result_id)
        folder.mkdir(exist_ok=True)
        (folder / _EXPIRES).write_text(f"{expires_at:.3f}")
        self._file(result_id, name).write_bytes(data)

    def path(self, result_id: str, name: str) -> Path:
        """The stored file, or NotFound when unknown or expired."""
        path = self._file(result_id, name)
        if not path.is_file() or self._expired(path.parent):
            raise NotFound("no such result (results are deleted after a while; colourise the photo again)")
        return path

    def delete(self, result_id: str) -> None:
        folder = self._folder(result_id)
        if not folder.is_dir():
            raise NotFound("no such result")
        shutil.rmtree(folder, ignore_errors=True)

    def sweep(self) -> int:
        """Delete every expired result; returns how many."""
        removed = 0
        for folder in self.directory.iterdir():
            if folder.is_dir() and self._expired(folder):
                shutil.rmtree(folder, ignore_errors=True)
                removed += 1
        return removed

    async def run_sweeper(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                removed = await asyncio.to_thread(self.sweep)
                if removed:
                    log.info("deleted %d expired results", removed)
            except OSError:
                log.exception("result sweep failed")

    def _folder(self, result_id: str) -> Path:
        if not _ID.match(result_id):
            raise NotFound("no such result")
        return self.directory / result_id

    def _file(self, result_id: str, name: str) -> Path:
        if not _NAME.match(name) or name == _EXPIRES:
            raise NotFound("no such result file")
        return self._folder(result_id) / name

    @staticmethod
    def _expired(folder: Path) -> bool:
        try:
            return float((folder / _EXPIRES).read_text()) <= time.time()
        except (OSError, ValueError):
            return True
