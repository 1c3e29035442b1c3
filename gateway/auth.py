"""API keys: which configured key a request offers, named by a fingerprint that is safe in metrics and logs."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence

from gateway.errors import Unauthorized


def fingerprint(key: str) -> str:
    """``key-`` and 8 hex digits of the key's SHA-256: names a client without revealing its key.

    Operators find a key's name with ``printf %s "$KEY" | sha256sum | cut -c1-8``.
    """
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:8]


def client_for(offered: str, keys: Sequence[str], *, how: str) -> str | None:
    """The fingerprint of the configured key ``offered`` matches; None when no keys are configured (open gateway).

    Every key is compared in constant time, so the answer's timing does not tell which keys are close.
    """
    if not keys:
        return None
    matches = [key for key in keys if secrets.compare_digest(offered.encode(), key.encode())]
    if not matches:
        raise Unauthorized(f"send a valid API key as {how}")
    return fingerprint(matches[0])
