"""REST API over the embedded backend: results, fan-out, errors, expiry, metrics, auth."""

from __future__ import annotations

import asyncio
import io
import time

import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from colorizers import create_model, weights
from gateway.app import create_app
from gateway.backends.base import Backend
from gateway.errors import ModelFailed
from gateway.settings import Settings
from tests.helpers import make_photo, to_bytes

MODELS = ["wallner-beta", "coloria-cnn", "bigcolor"]


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    for name in MODELS:
        weights.save(create_model(name, "tiny"), directory, variant="tiny")
    return directory


def make_settings(weights_dir, tmp_path, **overrides) -> Settings:
    defaults = dict(
        backend="embedded", grpc_port=0, weights_dir=weights_dir, models=MODELS, result_dir=tmp_path / "results",
        max_upload_bytes=200_000, max_pixels=1_000_000, readiness_probe_seconds=0.2,
    )
    return Settings(**{**defaults, **overrides})


@pytest.fixture
def client(weights_dir, tmp_path):
    with TestClient(create_app(make_settings(weights_dir, tmp_path))) as test_client:
        yield test_client


def post(client, files, **form):
    return client.post("/v1/colorize", files=[("images", f) for f in files], data=form)


def png_file(name="photo.png", size=(120, 80)):
    return (name, to_bytes(make_photo(*size)), "image/png")


def test_models_lists_the_catalogue(client):
    body = client.get("/v1/models").json()
    entries = {m["id"]: m for m in body["models"]}
    assert set(entries) == set(MODELS)
    assert entries["bigcolor"]["supports_seed"] and not entries["wallner-beta"]["supports_hints"]
    assert entries["coloria-cnn"]["working_size"] == 160 and entries["coloria-cnn"]["provenance"] == "trained"


def test_one_model_json_and_download(client):
    response = post(client, [png_file(size=(150, 90))], model="wallner-beta", format="jpeg")
    assert response.status_code == 200
    body = response.json()
    output = body["files"][0]["outputs"][0]
    assert output["status"] == "ok" and output["model"] == "wallner-beta" and output["latency_ms"] > 0
    assert len(body["id"]) == 32 and body["expires_at"] > time.time()
    download = client.get(output["url"])
    assert download.status_code == 200 and download.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(download.content)).size == (150, 90)


def test_accept_image_returns_the_image_itself(client):
    response = client.post(
        "/v1/colorize", files=[("images", png_file(size=(70, 50)))], data={"model": "coloria-cnn"},
        headers={"Accept": "image/png"},
    )
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(response.content)).size == (70, 50)
    assert client.get(response.headers["content-location"]).status_code == 200


def test_all_models_returns_every_model(client):
    response = post(client, [png_file()], model="all", seed="7")
    outputs = response.json()["files"][0]["outputs"]
    assert sorted(o["model"] for o in outputs) == sorted(MODELS)
    assert all(o["status"] == "ok" for o in outputs)


def test_several_files_one_model(client):
    response = post(client, [png_file(f"p{i}.png") for i in range(3)], model="wallner-beta")
    assert [f["filename"] for f in response.json()["files"]] == ["p0.png", "p1.png", "p2.png"]


@pytest.mark.parametrize(
    "files, form, status, code",
    [
        ([("empty.png", b"", "image/png")], {"model": "wallner-beta"}, 400, "empty_file"),
        ([("cut.png", to_bytes(make_photo())[:200], "image/png")], {"model": "wallner-beta"}, 400, "corrupt_image"),
        (
            [("notes.jpg", b"hello, this is text" * 20, "image/jpeg")],
            {"model": "wallner-beta"},
            415,
            "unsupported_image",
        ),
        ([("big.png", b"\x89PNG" + bytes(300_000), "image/png")], {"model": "wallner-beta"}, 413, "too_large"),
        ([png_file(size=(1200, 1000))], {"model": "wallner-beta"}, 413, "image_too_large"),
        ([png_file(f"{i}.png") for i in range(6)], {"model": "wallner-beta"}, 400, "bad_request"),
        ([png_file()], {"model": "nope"}, 404, "unknown_model"),
        ([png_file(), png_file()], {"model": "all"}, 400, "bad_request"),
        ([png_file()], {"model": "wallner-beta", "hints": "[oops"}, 422, "invalid_option"),
        ([png_file()], {"model": "wallner-beta", "format": "gif"}, 422, "invalid_option"),
        ([png_file()], {"model": "wallner-beta", "seed": "3"}, 422, "invalid_option"),
        ([png_file()], {"model": "wallner-beta", "size": "9"}, 422, "invalid_option"),
        ([png_file()], {"model": "wallner-beta", "seed": "x"}, 422, "invalid_request"),
    ],
)
def test_bad_requests_get_a_clear_json_error(client, files, form, status, code):
    response = post(client, files, **form)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and len(error["message"]) > 10


def test_missing_images_field(client):
    response = client.post("/v1/colorize", data={"model": "all"})
    assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_request"


def test_delete_and_unknown_results(client):
    output = post(client, [png_file()], model="wallner-beta").json()
    url = output["files"][0]["outputs"][0]["url"]
    assert client.delete(f"/v1/results/{output['id']}").status_code == 204
    assert client.get(url).status_code == 404
    assert client.get("/v1/results/" + "a" * 32 + "/x.png").json()["error"]["code"] == "not_found"
    assert client.get("/v1/results/../../etc/passwd").status_code == 404


def test_results_expire(weights_dir, tmp_path):
    settings = make_settings(weights_dir, tmp_path, result_ttl_seconds=0.5, sweep_interval_seconds=0.2)
    with TestClient(create_app(settings)) as client:
        body = post(client, [png_file()], model="wallner-beta").json()
        url = body["files"][0]["outputs"][0]["url"]
        assert client.get(url).status_code == 200
        time.sleep(1.0)
        assert client.get(url).status_code == 404
        assert not (tmp_path / "results" / body["id"]).exists()  # swept from disk


def test_health_readiness_and_metrics(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    deadline = time.time() + 10
    while not all(client.get("/readyz").json()["models"].values()) and time.time() < deadline:
        time.sleep(0.1)
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["backend"] == "embedded"
    assert all(ready.json()["models"].values()), client.get("/v1/models").text
    post(client, [png_file()], model="all")
    text = client.get("/metrics").text
    assert 'gateway_requests_total{api="/v1/colorize",method="POST",status="200"}' in text
    assert 'gateway_model_duration_seconds_count{model="coloria-cnn",status="ok"}' in text
    assert "gateway_fanout_duration_seconds_count" in text


def test_api_keys(weights_dir, tmp_path):
    with TestClient(create_app(make_settings(weights_dir, tmp_path, api_keys=["s3cret"]))) as client:
        assert client.get("/v1/models").status_code == 401
        assert client.get("/v1/models", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert client.get("/healthz").status_code == 200


class FlakyBackend(Backend):
    """A backend whose models misbehave on purpose: one raises, one hangs, the rest answer."""

    name = "flaky"

    async def reachable(self) -> bool:
        return True

    async def infer(self, model, grey, *, hints, seed, timeout, size=None):
        if model == "coloria-cnn":
            raise ModelFailed("model coloria-cnn failed: boom")
        if model == "bigcolor":
            await asyncio.sleep(30)
        return grey


def test_one_broken_and_one_hanging_model_do_not_fail_the_others(weights_dir, tmp_path, monkeypatch):
    async def flaky(settings, names):
        return FlakyBackend()

    monkeypatch.setattr("gateway.app.choose_backend", flaky)
    settings = make_settings(weights_dir, tmp_path, model_timeout_seconds=0.5)
    with TestClient(create_app(settings)) as client:
        started = time.perf_counter()
        outputs = {o["model"]: o for o in post(client, [png_file()], model="all").json()["files"][0]["outputs"]}
        assert time.perf_counter() - started < 5
    assert outputs["wallner-beta"]["status"] == "ok"
    assert outputs["coloria-cnn"]["status"] == "error" and "boom" in outputs["coloria-cnn"]["error"]["message"]
    assert outputs["bigcolor"]["status"] == "timeout" and outputs["bigcolor"]["error"]["code"] == "timeout"


def test_a_photo_at_the_working_size_comes_back_as_the_model_made_it():
    from colorizers import imaging
    from gateway.service import _merge_and_encode

    photo = make_photo(64, 64)
    model_png = to_bytes(make_photo(64, 64, seed=5))
    decoded = imaging.decode(to_bytes(photo))
    assert _merge_and_encode(decoded, model_png, "png", 64) is model_png  # no merge, no re-encode
    as_jpeg = Image.open(io.BytesIO(_merge_and_encode(decoded, model_png, "jpeg", 64)))
    assert as_jpeg.format == "JPEG" and as_jpeg.size == (64, 64)
    other = imaging.decode(to_bytes(make_photo(100, 64)))
    merged = Image.open(io.BytesIO(_merge_and_encode(other, model_png, "png", 64)))
    assert merged.size == (100, 64)  # chroma merged onto the photo's own lightness at its size
    assert abs(imaging.lightness(merged) - imaging.lightness(other.rgb)).mean() < 2.0  # up to gamut clipping
    translucent = photo.convert("RGBA")
    translucent.putalpha(128)
    with_alpha = imaging.decode(to_bytes(translucent))
    assert Image.open(io.BytesIO(_merge_and_encode(with_alpha, model_png, "png", 64))).mode == "RGBA"

