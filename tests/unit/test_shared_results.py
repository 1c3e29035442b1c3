"""Results through the REST API over the embedded backend: shared by replicas, kept over restarts, a full store."""

from __future__ import annotations

import errno
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.settings import Settings
from tests.helpers import make_photo, tiny_weights, to_bytes
from tests.redis_server import RedisServer

MODEL = "wallner-beta"


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory):
    return tiny_weights(tmp_path_factory.mktemp("weights"), MODEL)


@pytest.fixture(params=["folder", "redis"])
def store_settings(request, tmp_path) -> dict:
    """The settings that choose each store; gateways created with the same ones share their results."""
    if request.param == "folder":
        return {"result_dir": tmp_path / "results"}
    return {"result_store_url": request.getfixturevalue("redis_server").url}


def gateway(weights_dir: Path, **store) -> TestClient:
    settings = Settings(
        backend="embedded", grpc_port=0, weights_dir=weights_dir, models=[MODEL], readiness_probe_seconds=0.2,
        max_upload_bytes=200_000, max_pixels=1_000_000, **store,
    )
    return TestClient(create_app(settings))


def colorize(client: TestClient):
    photo = ("photo.png", to_bytes(make_photo(80, 60)), "image/png")
    return client.post("/v1/colorize", files=[("images", photo)], data={"model": MODEL})


def result_url(response) -> str:
    assert response.status_code == 200, response.text
    return response.json()["files"][0]["outputs"][0]["url"]


def test_results_outlive_the_gateway_that_made_them(weights_dir, store_settings):
    with gateway(weights_dir, **store_settings) as first:
        url = result_url(colorize(first))
        made = first.get(url).content
    with gateway(weights_dir, **store_settings) as restarted:
        download = restarted.get(url)
        assert download.status_code == 200 and download.content == made
        assert download.headers["content-type"] == "image/png"
        assert download.headers["content-disposition"] == f'attachment; filename="{url.rsplit("/", 1)[1]}"'


def test_replicas_share_one_redis(weights_dir, redis_server):
    with gateway(weights_dir, result_store_url=redis_server.url) as one, \
            gateway(weights_dir, result_store_url=redis_server.url) as other:
        response = colorize(one)
        url, result_id = result_url(response), response.json()["id"]
        assert other.get(url).content == one.get(url).content
        assert other.delete(f"/v1/results/{result_id}").status_code == 204
        gone = one.get(url)
        assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"
        assert one.delete(f"/v1/results/{result_id}").status_code == 404


def test_a_full_redis_answers_507_and_the_gateway_keeps_serving(weights_dir, tmp_path):
    with RedisServer(tmp_path / "redis", maxmemory="2mb") as server, \
            gateway(weights_dir, result_store_url=server.url) as client:
        server.fill()
        response = colorize(client)
        assert response.status_code == 507, response.text
        error = response.json()["error"]
        assert error["code"] == "result_store_full" and "full" in error["message"]
        assert client.get("/healthz").status_code == 200
        assert client.get("/v1/models").status_code == 200
        server.client.flushall()  # older results expired
        url = result_url(colorize(client))
        assert client.get(url).status_code == 200


def test_a_full_disk_answers_507(weights_dir, tmp_path, monkeypatch):
    results = tmp_path / "results"
    write_bytes = Path.write_bytes

    def disk_full_for_results(path: Path, data: bytes) -> int:
        if path.is_relative_to(results):
            raise OSError(errno.ENOSPC, "No space left on device")
        return write_bytes(path, data)

    with gateway(weights_dir, result_dir=results) as client:
        monkeypatch.setattr(Path, "write_bytes", disk_full_for_results)
        response = colorize(client)
        assert response.status_code == 507 and response.json()["error"]["code"] == "result_store_full"
        monkeypatch.undo()
        assert client.get(result_url(colorize(client))).status_code == 200


def wait_ready(client: TestClient) -> None:
    deadline = time.monotonic() + 20
    while (ready := client.get("/readyz")).status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ready.status_code == 200, ready.text


def test_a_down_redis_makes_the_gateway_unready(weights_dir, redis_server):
    with gateway(weights_dir, result_store_url=redis_server.url) as client:
        wait_ready(client)
        redis_server.stop()
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["detail"] == "the result store is unreachable"
        response = colorize(client)
        assert response.status_code == 503 and response.json()["error"]["code"] == "unavailable"
        assert client.get("/healthz").status_code == 200
        assert all(client.get("/readyz").json()["models"].values())  # the store failed, not the model
        redis_server.start()
        wait_ready(client)
        assert client.get(result_url(colorize(client))).status_code == 200
