"""Per-client limits: a request rate and a number of requests at once, so one client cannot starve the others.

A client is an API key (its fingerprint). Each has a token bucket that refills at ``rate_per_minute`` and holds at
most ``burst`` tokens (a request takes one), and a count of its requests in progress (at most ``max_concurrent``).
Over either limit the request is refused with 429 and a ``Retry-After`` that says when it would pass. The limits
hold per gateway replica: with N replicas behind a Service a client gets up to N times them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from gateway import metrics
from gateway.errors import TooManyRequests


@dataclass
class _Account:
    tokens: float
    refilled_at: float
    in_flight: int = 0


class ClientQuotas:
    """Rate and concurrency quotas per client; ``0`` turns a limit off. Anonymous requests (None) are not limited."""

    def __init__(
        self,
        rate_per_minute: float,
        burst: int,
        max_concurrent: int,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.rate = rate_per_minute / 60.0  # tokens a second
        self.burst = max(burst, 1)
        self.max_concurrent = max_concurrent
        self.clock = clock
        self._accounts: dict[str, _Account] = {}

    def acquire(self, client: str | None) -> None:
        """Admit one request of ``client`` or raise TooManyRequests; every admitted request must be released."""
        if client is None:
            return
        account = self._account(client)
        if self.max_concurrent and account.in_flight >= self.max_concurrent:
            metrics.CLIENT_REQUESTS.labels(client, "concurrency_limited").inc()
            raise TooManyRequests(
                f"this API key already has {account.in_flight} requests in progress (at most {self.max_concurrent}); "
                "wait for one to finish",
                code="concurrency_quota",
            )
        if self.rate:
            self._refill(account)
            if account.tokens < 1:
                wait = math.ceil((1 - account.tokens) / self.rate)
                metrics.CLIENT_REQUESTS.labels(client, "rate_limited").inc()
                raise TooManyRequests(
                    f"this API key is over its rate of {self.rate * 60:g} requests a minute; retry in {wait} s",
                    code="rate_quota",
                    retry_after=wait,
                )
            account.tokens -= 1
        account.in_flight += 1
        metrics.CLIENT_REQUESTS.labels(client, "admitted").inc()
        metrics.CLIENT_IN_FLIGHT.labels(client).inc()

    def release(self, client: str | None) -> None:
        if client is None:
            return
        self._accounts[client].in_flight -= 1
        metrics.CLIENT_IN_FLIGHT.labels(client).dec()

    def _account(self, client: str) -> _Account:
        if client not in self._accounts:
            self._accounts[client] = _Account(tokens=float(self.burst), refilled_at=self.clock())
        return self._accounts[client]

    def _refill(self, account: _Account) -> None:
        now = self.clock()
        account.tokens = min(float(self.burst), account.tokens + (now - account.refilled_at) * self.rate)
        account.refilled_at = now
