"""Per-key quotas (rate and concurrency, 429 with Retry-After, metrics per key) and the backend's one retry."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest
from fastapi.testclient import TestClient
from starlette.requests import Request

from gateway.app import create_app
from gateway.auth import client_for, fingerprint
from gateway.backends.base import Backend
from gateway.backends.torchserve import TorchServeBackend
from gateway.errors import DeadlineExceeded, ModelFailed, TooManyRequests, Unauthorized, Unavailable
from gateway.quotas import ClientQuotas
from gateway.settings import Settings
from tests.helpers import make_photo, tiny_weights, to_bytes, use_backend

MODEL = "coloria-cnn"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_rate_quota_is_a_token_bucket_per_client():
    clock = Clock()
    quotas = ClientQuotas(rate_per_minute=30, burst=2, max_concurrent=0, clock=clock)
    for _ in range(2):
        quotas.acquire("key-a")
        quotas.release("key-a")
    with pytest.raises(TooManyRequests) as refused:
        quotas.acquire("key-a")
    assert refused.value.code == "rate_quota" and refused.value.retry_after == 2  # one token every 2 s
    quotas.acquire("key-b")  # another client is not affected
    clock.now += 2.0
    quotas.acquire("key-a")
    for _ in range(50):  # anonymous requests (no keys configured) are not limited
        quotas.acquire(None)


def test_concurrency_quota_counts_requests_in_progress():
    quotas = ClientQuotas(rate_per_minute=0, burst=1, max_concurrent=2)
    quotas.acquire("key-a")
    quotas.acquire("key-a")
    with pytest.raises(TooManyRequests) as refused:
        quotas.acquire("key-a")
    assert refused.value.code == "concurrency_quota" and refused.value.retry_after == 1
    quotas.release("key-a")
    quotas.acquire("key-a")


def test_clients_are_named_by_a_fingerprint_never_by_their_key():
    assert client_for("anything", [], how="x") is None
    name = client_for("s3cret", ["other", "s3cret"], how="x")
    assert name == fingerprint("s3cret") and name.startswith("key-") and "s3cret" not in name and len(name) == 12
    with pytest.raises(Unauthorized):
        client_for("wrong", ["s3cret"], how="x")


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory):
    return tiny_weights(tmp_path_factory.mktemp("weights"), MODEL)


def settings(weights_dir, tmp_path, **overrides) -> Settings:
    values = dict(
        backend="embedded",
        grpc_port=0,
        weights_dir=weights_dir,
        models=[MODEL],
        result_dir=tmp_path / "results",
        readiness_probe_seconds=60,
        api_keys=["alpha", "beta"],
    )
    return Settings(**{**values, **overrides})


def colorize(client: TestClient, key: str) -> httpx.Response:
    return client.post(
        "/v1/colorize",
        files=[("images", ("p.png", to_bytes(make_photo(48, 32)), "image/png"))],
        data={"model": MODEL},
        headers={"Authorization": f"Bearer {key}"},
    )


def test_rest_rate_quota_refuses_one_key_with_retry_after_and_counts_per_key(weights_dir, tmp_path):
    app = create_app(settings(weights_dir, tmp_path, key_requests_per_minute=6, key_burst=2))
    with TestClient(app) as client:
        assert [colorize(client, "alpha").status_code for _ in range(2)] == [200, 200]
        refused = colorize(client, "alpha")
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_quota"
        assert refused.headers["Retry-After"] == "10"  # 6 a minute: the next token in 10 s
        assert colorize(client, "beta").status_code == 200  # the other key still gets through
        metrics = client.get("/metrics").text
    alpha, beta = fingerprint("alpha"), fingerprint("beta")
    assert f'gateway_client_requests_total{{client="{alpha}",outcome="rate_limited"}} 1.0' in metrics
    assert f'gateway_client_requests_total{{client="{beta}",outcome="admitted"}}' in metrics
    assert "alpha" not in metrics.replace(alpha, "")


class SlowBackend(Backend):
    """Answers every model after a pause, so requests overlap."""

    name = "slow"

    async def reachable(self) -> bool:
        return True

    async def infer(self, model, grey, *, hints, seed, timeout, size=None):
        await asyncio.sleep(0.6)
        return grey


def test_rest_concurrency_quota_per_key(weights_dir, tmp_path, monkeypatch):
    use_backend(monkeypatch, SlowBackend())
    app = create_app(settings(weights_dir, tmp_path, key_max_concurrent=1, key_requests_per_minute=0))
    with TestClient(app) as client:
        statuses: list[int] = []
        threads = [threading.Thread(target=lambda: statuses.append(colorize(client, "alpha").status_code))]
        threads[0].start()
        in_progress = f'gateway_client_in_flight_requests{{client="{fingerprint("alpha")}"}} 1.0'
        while in_progress not in client.get("/metrics").text:  # until the first request is being served
            time.sleep(0.01)
        second = colorize(client, "alpha")
        other = colorize(client, "beta")
        threads[0].join()
        assert statuses == [200]
        assert second.status_code == 429 and second.json()["error"]["code"] == "concurrency_quota"
        assert second.headers["Retry-After"] == "1"
        assert other.status_code == 200
        assert colorize(client, "alpha").status_code == 200  # the slot came back


def backend_answering(*answers) -> tuple[TorchServeBackend, list[int]]:
    """A TorchServe backend over a scripted transport: each request gets the next answer (status, body) or error."""
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        answer = answers[len(calls)]
        calls.append(1)
        if isinstance(answer, Exception):
            raise answer
        status, message = answer
        return httpx.Response(status, json={"code": status, "message": message})

    backend = TorchServeBackend("http://torchserve")
    backend._client = httpx.AsyncClient(base_url="http://torchserve", transport=httpx.MockTransport(handler))
    return backend, calls


async def infer(backend: TorchServeBackend) -> bytes:
    return await backend.infer(MODEL, b"grey", hints=None, seed=None, timeout=5)


@pytest.mark.parametrize(
    "first",
    [(507, "Worker died."), httpx.ConnectError("refused"), httpx.RemoteProtocolError("disconnected without answer")],
)
def test_an_inference_the_backend_dropped_is_sent_once_more(first):
    backend, calls = backend_answering(first, (200, "colour"))
    assert asyncio.run(infer(backend)) and len(calls) == 2


@pytest.mark.parametrize(
    "answers, error",
    [
        (((507, "Worker died."), (507, "Worker died.")), Unavailable),  # once only
        ((httpx.ConnectError("refused"), httpx.ConnectError("refused")), Unavailable),
        ((httpx.ReadTimeout("slow"),), DeadlineExceeded),  # a hanging model is not asked twice
        (((503, "Prediction failed"),), ModelFailed),  # the handler answered: no retry
    ],
)
def test_what_is_not_retried(answers, error):
    backend, calls = backend_answering(*answers)
    with pytest.raises(error):
        asyncio.run(infer(backend))
    assert len(calls) == len(answers)


def test_the_inference_request_is_a_form_that_a_multipart_parser_reads():
    """The body written in one piece parses as the form TorchServe's handler gets: fields, the picture, a reference."""
    forms = []

    async def handler(request: httpx.Request) -> httpx.Response:
        scope = {
            "type": "http",
            "method": "POST",
            "headers": [(k.encode(), v.encode()) for k, v in request.headers.items()],
        }
        body = request.content

        async def receive() -> dict:
            return {"type": "http.request", "body": body, "more_body": False}

        form = await Request(scope, receive).form()
        forms.append({key: (await value.read()) if hasattr(value, "read") else value for key, value in form.items()})
        return httpx.Response(200, content=b"colour")

    backend = TorchServeBackend("http://torchserve")
    backend._client = httpx.AsyncClient(base_url="http://torchserve", transport=httpx.MockTransport(handler))
    hints = '[{"x": 0.5, "y": 0.25, "color": "#3366cc"}]'

    async def call() -> bytes:
        return await backend.infer(
            MODEL, b"BM grey\r\n--x", hints=hints, seed=7, timeout=5, size=192, reference=b"BM reference"
        )

    assert asyncio.run(call()) == b"colour"
    assert forms == [
        {"hints": hints, "seed": "7", "size": "192", "data": b"BM grey\r\n--x", "reference": b"BM reference"}
    ]
