"""REST API over the embedded backend: results, fan-out, errors, expiry, metrics, auth."""

from __future__ import annotations

import asyncio
import io
import time

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from colorizers import imaging
from gateway.app import create_app
from gateway.backends.base import Backend
from gateway.errors import ModelFailed
from gateway.service import _merge_and_encode, _Original
from gateway.settings import Settings
from tests.helpers import make_photo, tiny_weights, to_bytes, use_backend

MODELS = ["wallner-beta", "coloria-cnn", "bigcolor"]


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory):
    return tiny_weights(tmp_path_factory.mktemp("weights"), *MODELS)


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
    use_backend(monkeypatch, FlakyBackend())
    settings = make_settings(weights_dir, tmp_path, model_timeout_seconds=0.5)
    with TestClient(create_app(settings)) as client:
        started = time.perf_counter()
        outputs = {o["model"]: o for o in post(client, [png_file()], model="all").json()["files"][0]["outputs"]}
        assert time.perf_counter() - started < 5
    assert outputs["wallner-beta"]["status"] == "ok"
    assert outputs["coloria-cnn"]["status"] == "error" and "boom" in outputs["coloria-cnn"]["error"]["message"]
    assert outputs["bigcolor"]["status"] == "timeout" and outputs["bigcolor"]["error"]["code"] == "timeout"


def test_a_photo_at_the_working_size_comes_back_as_the_model_made_it():
    photo = make_photo(64, 64)
    model_png = to_bytes(make_photo(64, 64, seed=5))
    decoded = _Original(imaging.decode(to_bytes(photo)))
    assert _merge_and_encode(decoded, model_png, "png", 64) is model_png  # no merge, no re-encode
    as_jpeg = Image.open(io.BytesIO(_merge_and_encode(decoded, model_png, "jpeg", 64)))
    assert as_jpeg.format == "JPEG" and as_jpeg.size == (64, 64)
    other = imaging.decode(to_bytes(make_photo(100, 64)))
    merged = Image.open(io.BytesIO(_merge_and_encode(_Original(other), model_png, "png", 64)))
    assert merged.size == (100, 64)  # chroma merged onto the photo's own lightness at its size
    assert abs(imaging.lightness(merged) - imaging.lightness(other.rgb)).mean() < 2.0  # up to gamut clipping
    translucent = photo.convert("RGBA")
    translucent.putalpha(128)
    with_alpha = _Original(imaging.decode(to_bytes(translucent)))
    assert Image.open(io.BytesIO(_merge_and_encode(with_alpha, model_png, "png", 64))).mode == "RGBA"


def translucent_png(name="clear.png", size=(120, 80)):
    photo = make_photo(*size).convert("RGBA")
    photo.putalpha(160)
    return (name, to_bytes(photo), "image/png")


@pytest.mark.parametrize(
    "file, form, media_type, extension",
    [
        (("scan.jpg", to_bytes(make_photo(120, 80), "JPEG"), "image/jpeg"), {}, "image/jpeg", "jpg"),
        (png_file(), {}, "image/png", "png"),
        (translucent_png(), {}, "image/png", "png"),  # alpha: PNG keeps it
        (("web.webp", to_bytes(make_photo(120, 80), "WEBP"), "image/webp"), {}, "image/webp", "webp"),
        (("web.webp", translucent_png()[1], "image/webp"), {}, "image/png", "png"),
        (("scan.jpg", to_bytes(make_photo(120, 80), "JPEG"), "image/jpeg"), {"format": "png"}, "image/png", "png"),
        (png_file(), {"format": "JPEG"}, "image/jpeg", "jpg"),
        (png_file(), {"format": "auto"}, "image/png", "png"),
    ],
)
def test_output_format_follows_the_photo_unless_asked(client, file, form, media_type, extension):
    output = post(client, [file], model="wallner-beta", **form).json()["files"][0]["outputs"][0]
    assert output["media_type"] == media_type and output["url"].endswith(f".wallner-beta.{extension}")
    download = client.get(output["url"])
    assert download.headers["content-type"] == media_type
    assert Image.open(io.BytesIO(download.content)).format == extension.replace("jpg", "jpeg").upper()


@pytest.mark.parametrize(
    "accept, media_type", [("image/png", "image/png"), ("image/webp;q=0.9", "image/webp"), ("image/*", "image/jpeg")]
)
def test_auto_format_yields_to_the_image_type_an_accept_header_names(client, accept, media_type):
    scan = ("scan.jpg", to_bytes(make_photo(120, 80), "JPEG"), "image/jpeg")
    response = client.post(
        "/v1/colorize", files=[("images", scan)], data={"model": "wallner-beta"}, headers={"Accept": accept}
    )
    assert response.status_code == 200 and response.headers["content-type"] == media_type


def test_grpc_options_leave_the_format_to_the_photo_unless_one_is_asked():
    from gateway.grpc_server import to_options
    from gateway.proto import colorizer_pb2 as pb

    assert to_options(pb.Options(), model="wallner-beta").format == "auto"
    assert to_options(pb.Options(format=pb.IMAGE_FORMAT_PNG), model="wallner-beta").format == "png"


class Counted:
    """Records what the service decodes and how many merge bases it makes, through the module it calls."""

    def __init__(self, monkeypatch, upload: bytes):
        self.upload_decodes: list[imaging.DecodedImage] = []
        self.lab_bases = 0
        decode, base = imaging.decode, imaging.LabMergeBase

        def counted_decode(data, **kwargs):
            decoded = decode(data, **kwargs)
            if data == upload:
                self.upload_decodes.append(decoded)
            return decoded

        def counted_base(original):
            self.lab_bases += 1
            return base(original)

        monkeypatch.setattr(imaging, "decode", counted_decode)
        monkeypatch.setattr(imaging, "LabMergeBase", counted_base)


def test_all_models_share_one_decode_and_one_lightness(client, monkeypatch):
    upload = to_bytes(make_photo(120, 80))  # not at a working size: every model's result is merged onto it
    counted = Counted(monkeypatch, upload)
    outputs = post(client, [("p.png", upload, "image/png")], model="all").json()["files"][0]["outputs"]
    assert len(outputs) == len(MODELS) and all(o["status"] == "ok" for o in outputs)
    assert len(counted.upload_decodes) == 1 and counted.lab_bases == 1


def test_a_big_jpeg_goes_to_the_models_from_a_draft(client, monkeypatch):
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed after rotating 90 degrees clockwise
    buffer = io.BytesIO()
    make_photo(800, 600).save(buffer, "JPEG", quality=90, exif=exif)
    upload = buffer.getvalue()
    monkeypatch.setattr(imaging, "TABLE_MERGE_MIN_PIXELS", 100_000)  # this photo takes the lookup-table merge
    counted = Counted(monkeypatch, upload)
    body = post(client, [("scan.jpg", upload, "image/jpeg")], model="all", size="64").json()
    entry = body["files"][0]
    assert (entry["width"], entry["height"]) == (600, 800)
    drafts = [d.size for d in counted.upload_decodes if d.draft]  # the models' inputs came from a draft
    full = [d.size for d in counted.upload_decodes if not d.draft]  # decoded alongside, for the merge
    assert drafts == [(150, 200)] and full == [(600, 800)] and counted.lab_bases == 1
    for output in entry["outputs"]:
        assert output["status"] == "ok" and output["media_type"] == "image/jpeg"
        result = Image.open(io.BytesIO(client.get(output["url"]).content))
        assert result.format == "JPEG" and result.size == (600, 800)

