"""The result store's one interface: each request's result files under one unguessable id, gone after a TTL."""

from __future__ import annotations

import re
import secrets
import time
from abc import ABC, abstractmethod

from gateway.errors import InsufficientStorage, NotFound

_ID = re.compile(r"^[A-Za-z0-9_-]{32}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")
GONE = "no such result (results are deleted after a while; colourise the photo again)"


class ResultStore(ABC):
    """Where results wait for their download.

    The methods block (disk or network): the service calls ``put`` from the worker thread that encoded
    the result, and the routes run the others in a thread, so the event loop never waits on the store.
    A full store raises InsufficientStorage, an unreachable one Unavailable, an unknown or expired
    result NotFound.
    """

    def __init__(self, ttl_seconds: float):
        self.ttl = ttl_seconds

    @staticmethod
    def new_id() -> str:
        return secrets.token_urlsafe(24)  # 32 characters, 192 random bits

    def expires_at(self) -> float:
        return time.time() + self.ttl

    @abstractmethod
    def put(self, result_id: str, name: str, data: bytes, expires_at: float) -> None:
        """Keep one result file until ``expires_at`` (seconds since the epoch)."""

    @abstractmethod
    def read(self, result_id: str, name: str) -> bytes:
        """One result file's bytes."""

    @abstractmethod
    def delete(self, result_id: str) -> None:
        """Every file of a result, now."""

    @abstractmethod
    def reachable(self) -> bool:
        """Whether the store can serve now (for /readyz)."""

    @abstractmethod
    def close(self) -> None:
        """Release connections at shutdown."""

    @abstractmethod
    async def run_sweeper(self, interval: float) -> None:
        """The background task that deletes expired results every ``interval`` seconds, where the store needs one."""

    def full_error(self) -> InsufficientStorage:
        """What a full store answers: the wait is bounded by the TTL, as every stored result expires."""
        minutes = max(1, round(self.ttl / 60))
        return InsufficientStorage(
            f"the result store is full; results are kept for {minutes} minute{'s' if minutes > 1 else ''}, "
            "so try again in a few minutes, when older ones have expired"
        )


def check_id(result_id: str) -> None:
    """Ids are the store's own (new_id); anything else names no result and must never reach a path or a key."""
    if not _ID.match(result_id):
        raise NotFound("no such result")


def check_name(name: str) -> None:
    if not _NAME.match(name):
        raise NotFound("no such result file")
