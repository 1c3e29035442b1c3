"""The folder store: one folder per result id holding its files and an expiry stamp, swept in the background.

The zero-setup default: results outlive a gateway restart (the folder is not a temporary one), and
replicas share them only through a shared volume.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import shutil
import time
from pathlib import Path

from gateway.errors import NotFound
from gateway.store.base import GONE, ResultStore, check_id, check_name

log = logging.getLogger(__name__)

_EXPIRES = ".expires"  # cannot clash with a result file: their names start with a letter or digit
_FULL = (errno.ENOSPC, errno.EDQUOT)


class FolderStore(ResultStore):
    def __init__(self, directory: Path, ttl_seconds: float):
        super().__init__(ttl_seconds)
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def __str__(self) -> str:
        return f"the folder {self.directory.resolve()}"

    def put(self, result_id: str, name: str, data: bytes, expires_at: float) -> None:
        path = self._file(result_id, name)
        try:
            path.parent.mkdir(exist_ok=True)
            (path.parent / _EXPIRES).write_text(f"{expires_at:.3f}")
            path.write_bytes(data)
        except OSError as exc:
            path.unlink(missing_ok=True)  # never leave half a file to download
            if exc.errno in _FULL:
                raise self.full_error() from exc
            raise

    def read(self, result_id: str, name: str) -> bytes:
        path = self._file(result_id, name)
        if not path.is_file() or self._expired(path.parent):
            raise NotFound(GONE)
        return path.read_bytes()

    def delete(self, result_id: str) -> None:
        folder = self._folder(result_id)
        if not folder.is_dir():
            raise NotFound("no such result")
        shutil.rmtree(folder, ignore_errors=True)

    def reachable(self) -> bool:
        return self.directory.is_dir()

    def close(self) -> None:
        """A folder holds no connection."""

    def sweep(self) -> int:
        """Delete every expired result; returns how many."""
        removed = 0
        for folder in self.directory.iterdir():
            if folder.is_dir() and self._expired(folder):
                shutil.rmtree(folder, ignore_errors=True)
                removed += 1
        return removed

    async def run_sweeper(self, interval: float) -> None:
        """A folder does not expire its files: delete expired results every ``interval`` seconds."""
        while True:
            await asyncio.sleep(interval)
            try:
                removed = await asyncio.to_thread(self.sweep)
                if removed:
                    log.info("deleted %d expired results", removed)
            except OSError:
                log.exception("result sweep failed")

    def _folder(self, result_id: str) -> Path:
        check_id(result_id)
        return self.directory / result_id

    def _file(self, result_id: str, name: str) -> Path:
        check_name(name)
        return self._folder(result_id) / name

    @staticmethod
    def _expired(folder: Path) -> bool:
        try:
            return float((folder / _EXPIRES).read_text()) <= time.time()
        except (OSError, ValueError):
            return True
