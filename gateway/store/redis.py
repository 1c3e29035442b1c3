"""The Redis store: one hash per result id (field = file name, value = bytes), expired by Redis itself.

Every gateway replica reads and writes the same Redis, so a result made on one replica downloads from
any other, and outlives the replica that made it. Redis deletes a result at its expiry time: there is
no sweeper. Run Redis with ``maxmemory-policy noeviction``: a full Redis then refuses new results
(507 here) instead of silently evicting results that clients are about to download.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from gateway.errors import NotFound, Unavailable
from gateway.store.base import GONE, ResultStore, check_id, check_name

KEY_PREFIX = "colorizers:result:"

# A lost connection is retried twice within half a second (a Redis restart, a failover); past that the
# client gets a 503 rather than a request that hangs.
_RETRY = Retry(ExponentialBackoff(cap=0.4, base=0.1), retries=2)
_CONNECT_TIMEOUT_SECONDS = 2.0
_IO_TIMEOUT_SECONDS = 10.0  # room for a result of tens of MB


class RedisStore(ResultStore):
    def __init__(self, url: str, ttl_seconds: float):
        super().__init__(ttl_seconds)
        self.client = redis.Redis.from_url(
            url,
            socket_connect_timeout=_CONNECT_TIMEOUT_SECONDS,
            socket_timeout=_IO_TIMEOUT_SECONDS,
            retry=_RETRY,
        )

    def __str__(self) -> str:
        where = self.client.connection_pool.connection_kwargs  # no password in here, unlike the URL
        address = where.get("path") or f"{where.get('host')}:{where.get('port')}"
        return f"Redis at {address}, database {where.get('db', 0)}"

    async def run_sweeper(self, interval: float) -> None:
        """Nothing to sweep: Redis deletes each result at its expiry time."""

    def put(self, result_id: str, name: str, data: bytes, expires_at: float) -> None:
        key = _key(result_id)
        check_name(name)
        with self._answering(), self.client.pipeline(transaction=True) as transaction:
            transaction.hset(key, name, data)
            transaction.pexpireat(key, int(expires_at * 1000))
            transaction.execute()

    def read(self, result_id: str, name: str) -> bytes:
        key = _key(result_id)
        check_name(name)
        with self._answering():
            data = self.client.hget(key, name)
        if not isinstance(data, bytes):  # None: never stored, deleted, or expired (checked on access too)
            raise NotFound(GONE)
        return data

    def delete(self, result_id: str) -> None:
        key = _key(result_id)
        with self._answering():
            deleted = self.client.delete(key)
        if not deleted:
            raise NotFound("no such result")

    def reachable(self) -> bool:
        try:
            return bool(self.client.ping())
        except RedisError:
            return False

    def close(self) -> None:
        self.client.close()

    @contextlib.contextmanager
    def _answering(self) -> Iterator[None]:
        """Redis's failures as the gateway's errors: full is 507, unreachable is 503."""
        try:
            yield
        except OutOfMemoryError as exc:
            raise self.full_error() from exc
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise Unavailable("the result store (Redis) does not answer; try again in a few seconds") from exc


def _key(result_id: str) -> str:
    check_id(result_id)
    return KEY_PREFIX + result_id
