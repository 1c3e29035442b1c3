"""TorchServe backend: the inference API over a pooled, keep-alive httpx client."""

from __future__ import annotations

import json
import secrets
import time

import httpx

from gateway import metrics
from gateway.backends.base import Backend
from gateway.errors import BadRequest, DeadlineExceeded, ModelFailed, NotFound, TooManyRequests, Unavailable

# An inference has no side effects, so one that failed before TorchServe answered is sent once more: a killed
# worker (TorchServe restarts it and queues the retry), a dropped keep-alive connection. A timeout is never
# retried (the model may be hanging), nor is an answer the handler gave.
RETRIES = 1
_UNANSWERED = (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)


class TorchServeBackend(Backend):
    name = "torchserve"

    def __init__(self, base_url: str, *, max_connections: int = 64):
        self.base_url = base_url.rstrip("/")
        self._limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        self._client = httpx.AsyncClient(base_url=self.base_url, limits=self._limits, timeout=httpx.Timeout(60.0))

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            raise RuntimeError("TorchServeBackend.start() was not awaited")
        return self._client

    async def reachable(self) -> bool:
        try:
            response = await self.client.get("/ping", timeout=3.0)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def infer(
        self,
        model: str,
        grey: bytes,
        *,
        hints: str | None,
        seed: int | None,
        timeout: float,
        size: int | None = None,
        reference: bytes | None = None,
    ) -> bytes:
        options = (("hints", hints), ("seed", None if seed is None else str(seed)), ("size", size and str(size)))
        fields = {k: v for k, v in options if v}
        files = {"data": grey, **({"reference": reference} if reference else {})}
        body, content_type = _multipart_body(fields, files)
        deadline = time.monotonic() + timeout
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self.client.post(
                    f"/predictions/{model}",
                    content=body,
                    headers={"Content-Type": content_type},
                    timeout=max(deadline - time.monotonic(), 0.1),
                )
            except httpx.TimeoutException:
                raise DeadlineExceeded(f"model {model} did not answer within {timeout:g} s") from None
            except httpx.TransportError as exc:
                if attempt <= RETRIES and isinstance(exc, _UNANSWERED):
                    metrics.BACKEND_RETRIES.labels(model, type(exc).__name__).inc()
                    continue
                raise Unavailable(f"the model server is unreachable ({type(exc).__name__})") from None
            if response.status_code == 200:
                return response.content
            if attempt <= RETRIES and _worker_died(response):
                metrics.BACKEND_RETRIES.labels(model, "worker_died").inc()
                continue
            raise _error_for(model, response)


def _multipart_body(fields: dict[str, str], files: dict[str, bytes]) -> tuple[bytes, str]:
    """A multipart/form-data body in one piece, and its content type; the files are BMP pictures.

    One buffer goes out in one write: httpx streams ``files=`` in a dozen small writes, each a trip through the event
    loop, which at 256 pixels cost about as much as the rest of the call.
    """
    boundary = secrets.token_hex(16)
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    for name, data in files.items():
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{name}.bmp"\r\n'
            "Content-Type: image/bmp\r\n\r\n"
        )
        parts += [head.encode(), data, b"\r\n"]
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def _worker_died(response: httpx.Response) -> bool:
    """TorchServe's answer when the worker process running the request died (killed, out of memory): 507."""
    return response.status_code == 507 and "worker died" in _message(response).lower()


def _error_for(model: str, response: httpx.Response) -> Exception:
    message = _message(response)
    status = response.status_code
    if status == 400:
        return BadRequest(message)
    if status == 404:
        return NotFound(f"model {model} is not loaded in the model server")
    if status == 429:
        return TooManyRequests(f"model {model} is busy: {message}")
    if status == 503 and "prediction failed" in message.lower():  # TorchServe's answer when a handler raises
        return ModelFailed(f"model {model} failed: {message}")
    if status in (503, 507):
        return Unavailable(f"model {model} is not available: {message}")
    if status == 504 or status == 408:
        return DeadlineExceeded(f"model {model} did not answer in time")
    return ModelFailed(f"model {model} failed: {message}")


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return response.text[:200] or response.reason_phrase
    if isinstance(body, dict):
        inner = body.get("error")
        if isinstance(inner, dict) and "message" in inner:
            return str(inner["message"])
        if "message" in body:
            return str(body["message"])
    return response.text[:200]
