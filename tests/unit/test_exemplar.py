"""Colour from a reference photo: the correspondence, the fall-back, the build, the measurement and every interface."""

from __future__ import annotations

import io
import json

import grpc
import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image, ImageOps
from skimage import data

from colorizers import cli, create_model, imaging, weights
from colorizers.color import rgb_to_lab
from colorizers.models.exemplar import ExemplarColorizer
from colorizers.models.pretrained import load_encoder_weights
from colorizers.pipeline import Colorizer, ReferenceRequestError, decode_reference
from gateway.app import create_app
from gateway.proto import colorizer_pb2 as pb
from gateway.proto import colorizer_pb2_grpc as pb_grpc
from gateway.settings import Settings
from tests.helpers import free_port, make_photo, to_bytes
from training import exemplar as exemplar_training
from training.metrics import delta_e00
from training.recipes.exemplar import other_view as recipe_other_view

SIDE = 128


def photo(name: str, side: int = SIDE) -> Image.Image:
    return Image.fromarray(getattr(data, name)()).convert("RGB").resize((side, side), Image.Resampling.BICUBIC)


def other_view(image: Image.Image) -> Image.Image:
    """A mirrored crop of 80 % of the photo, at another scale: the same scene seen differently."""
    w, h = image.size
    return ImageOps.mirror(image.crop((w // 10, h // 5, w, h)).resize((w * 3 // 4, h * 2 // 3)))


def delta(truth: Image.Image, result: Image.Image) -> float:
    to_lab = lambda im: rgb_to_lab(np.asarray(im, dtype=np.float64) / 255.0)  # noqa: E731
    return float(delta_e00(to_lab(truth), to_lab(result)).mean())


def grey_of(image: Image.Image) -> Image.Image:
    lab = rgb_to_lab(np.asarray(image, dtype=np.float64) / 255.0)
    lab[..., 1:] = 0
    from colorizers.color import lab_to_rgb

    return Image.fromarray((lab_to_rgb(lab) * 255 + 0.5).astype(np.uint8))


@pytest.fixture(scope="module")
def colorizer() -> Colorizer:
    torch.manual_seed(0)
    model = create_model("exemplar", "tiny")
    load_encoder_weights(model)
    return Colorizer(model, device="cpu")


# -- the model ------------------------------------------------------------------------------------------------------


def test_a_matching_reference_carries_its_colours(colorizer):
    cat = photo("chelsea")
    result = colorizer.colorize(cat, reference=other_view(cat))
    assert result.size == cat.size
    assert delta(cat, result) < 0.6 * delta(cat, grey_of(cat))


def test_an_unrelated_or_grey_reference_falls_back_to_the_automatic_colours(colorizer):
    cat, coffee = photo("chelsea"), photo("coffee")
    model: ExemplarColorizer = colorizer.model
    l = torch.from_numpy(imaging.lightness(colorizer.model_input(cat, SIDE)))[None, None]

    def lab(image):
        return torch.from_numpy(rgb_to_lab(np.asarray(image, dtype=np.float32) / 255.0)).permute(2, 0, 1)[None]

    with torch.inference_mode():
        automatic = model.predict_ab(l)
        same_ab, same_conf = model.predict_with_confidence(l, lab(cat))
        other_ab, other_conf = model.predict_with_confidence(l, lab(coffee))
        grey_ab, grey_conf = model.predict_with_confidence(l, lab(grey_of(coffee)))
    assert float(same_conf.mean()) > 0.5
    assert float(other_conf.mean()) < 0.15
    assert float(grey_conf.max()) == 0.0 and torch.equal(grey_ab, automatic)  # a grey reference gives nothing
    # where the unrelated photo is used at all, it moves the colours little from the automatic ones
    assert float((other_ab - automatic).abs().mean()) < 0.3 * float((same_ab - automatic).abs().mean())


def test_without_a_reference_the_library_gives_the_automatic_result(colorizer):
    cat = photo("chelsea", 64)
    model = colorizer.model
    l = torch.from_numpy(imaging.lightness(cat))[None, None]
    with torch.inference_mode():
        torch.testing.assert_close(model.predict_ab(l), model.fallback.predict_ab(l))
    assert colorizer.colorize(cat).size == cat.size


def test_bad_references_get_clear_errors(colorizer, tmp_path):
    with pytest.raises(ReferenceRequestError, match="no colour") as grey:
        colorizer.colorize(photo("chelsea", 64), reference=grey_of(photo("coffee", 64)))
    assert grey.value.code == "bad_reference"
    with pytest.raises(ReferenceRequestError, match="at least 16"):
        colorizer.colorize(photo("chelsea", 64), reference=make_photo(8, 8))
    huge = to_bytes(make_photo(400, 300))
    with pytest.raises(imaging.ImageTooLargeError, match="Reference photo"):
        decode_reference(huge, max_pixels=100_000)
    with pytest.raises(imaging.ImageError, match="Reference photo"):
        decode_reference(b"not an image at all, just text")
    with pytest.raises(ReferenceRequestError, match="needs a reference") as missing:
        colorizer.prepare(to_bytes(make_photo()))
    assert missing.value.code == "needs_reference"
    other = Colorizer(create_model("wallner-beta", "tiny"), device="cpu")
    with pytest.raises(ReferenceRequestError, match="does not take a reference"):
        other.prepare(to_bytes(make_photo()), reference=to_bytes(make_photo()))


def test_serving_request_with_a_reference(colorizer):
    cat = photo("chelsea")
    item = colorizer.prepare(to_bytes(cat), reference=to_bytes(other_view(cat)), size=64)
    assert item.grey.size == (64, 64) and item.reference is not None
    out = colorizer.colorize_working_batch([item, item])
    assert [o.size for o in out] == [(64, 64), (64, 64)]


# -- build and measurement ------------------------------------------------------------------------------------------


def test_build_copies_the_fallback_head_in(tmp_path):
    torch.manual_seed(0)
    head = create_model("wallner-full", "tiny").eval()
    weights.save(head, tmp_path, half=False, variant="tiny")
    path = exemplar_training.build_exemplar("wallner-full", tmp_path, tmp_path / "out")
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["fallback"]["name"] == "wallner-full" and meta["backbone"]["name"] == "efficientnet-lite0"
    model, _ = weights.load("exemplar", tmp_path / "out")
    l = torch.rand(1, 1, 64, 64) * 100
    with torch.inference_mode():
        assert (model.predict_ab(l) - head.predict_ab(l)).abs().max() < 0.5  # float16 copy of the head


def test_measure_on_synthetic_photos(colorizer):
    photos = [photo(name, 96) for name in ("chelsea", "coffee", "astronaut")]
    report = exemplar_training.measure(colorizer, photos)
    mean = report["mean"]
    assert report["images"] == 3 and set(report["per_image"][0]) >= {"grey", "automatic", "same_scene", "unrelated"}
    assert mean["same_scene"] < mean["grey"]
    assert exemplar_training.grid(colorizer, photos[:2], cell=48).size == (6 * 48, 18 + 2 * 48)


def test_recipe_view_keeps_the_shape():
    lab = torch.rand(2, 3, 32, 40)
    view = recipe_other_view(lab, torch.Generator().manual_seed(0))
    assert view.shape == lab.shape and not torch.equal(view, lab)


# -- interfaces -----------------------------------------------------------------------------------------------------

SERVED = ["exemplar", "wallner-beta"]


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    for name in SERVED:
        model = create_model(name, "tiny")
        load_encoder_weights(model)
        weights.save(model, directory, variant="tiny")
    return directory


@pytest.fixture(scope="module")
def gateway(weights_dir, tmp_path_factory):
    settings = Settings(
        backend="embedded", grpc_port=free_port(), weights_dir=weights_dir, models=SERVED,
        result_dir=tmp_path_factory.mktemp("results"), max_upload_bytes=400_000, max_pixels=1_000_000,
        readiness_probe_seconds=0.2,
    )
    with TestClient(create_app(settings)) as client:
        yield client, settings


def post(client, form, reference=None, image=None):
    files = [("images", ("photo.png", image or to_bytes(photo("chelsea", 96)), "image/png"))]
    if reference is not None:
        files.append(("reference", ("reference.png", reference, "image/png")))
    return client.post("/v1/colorize", files=files, data=form)


def test_rest_lists_what_the_model_needs(gateway):
    client, _ = gateway
    entries = {m["id"]: m for m in client.get("/v1/models").json()["models"]}
    assert entries["exemplar"]["supports_reference"] and entries["exemplar"]["needs_reference"]
    assert not entries["wallner-beta"]["supports_reference"] and not entries["wallner-beta"]["needs_reference"]


def test_rest_reference_field(gateway):
    client, _ = gateway
    reference = to_bytes(other_view(photo("chelsea", 96)))
    response = post(client, {"model": "exemplar", "size": "64"}, reference)
    assert response.status_code == 200, response.text
    assert response.json()["files"][0]["outputs"][0]["status"] == "ok"


@pytest.mark.parametrize(
    "form, reference, code",
    [
        ({"model": "exemplar"}, None, "needs_reference"),
        ({"model": "wallner-beta"}, "colour", "bad_reference"),
        ({"model": "exemplar"}, "grey", "bad_reference"),
        ({"model": "exemplar"}, "tiny", "bad_reference"),
        ({"model": "exemplar"}, "text", "unsupported_image"),
    ],
)
def test_rest_reference_errors(gateway, form, reference, code):
    client, _ = gateway
    references = {
        "colour": to_bytes(photo("coffee", 64)),
        "grey": to_bytes(photo("coffee", 64).convert("L")),
        "tiny": to_bytes(make_photo(8, 8)),
        "text": b"this is not an image, just words" * 4,
    }
    response = post(client, form, references.get(reference))
    assert response.status_code in (400, 415), response.text
    error = response.json()["error"]
    assert error["code"] == code and "reference" in error["message"].lower() or code == "unsupported_image"


def test_rest_all_models_with_and_without_a_reference(gateway):
    client, _ = gateway
    without = {o["model"]: o for o in post(client, {"model": "all", "size": "64"}).json()["files"][0]["outputs"]}
    assert without["wallner-beta"]["status"] == "ok"
    assert without["exemplar"]["status"] == "error" and without["exemplar"]["error"]["code"] == "needs_reference"
    reference = to_bytes(other_view(photo("chelsea", 96)))
    with_ref = post(client, {"model": "all", "size": "64"}, reference).json()["files"][0]["outputs"]
    assert all(o["status"] == "ok" for o in with_ref)


def test_grpc_reference_field(gateway):
    _, settings = gateway
    image = to_bytes(photo("chelsea", 96))
    reference = to_bytes(other_view(photo("chelsea", 96)))
    with grpc.insecure_channel(f"127.0.0.1:{settings.grpc_port}") as channel:
        stub = pb_grpc.ColorizerStub(channel)
        models = {m.id: m for m in stub.ListModels(pb.ListModelsRequest(), timeout=10).models}
        assert models["exemplar"].needs_reference and models["exemplar"].supports_reference
        assert not models["wallner-beta"].supports_reference
        options = pb.Options(size=64)
        reply = stub.Colorize(pb.ColorizeRequest(image=image, model="exemplar", options=options, reference=reference))
        assert Image.open(io.BytesIO(reply.image)).size == (96, 96)
        with pytest.raises(grpc.RpcError) as missing:
            stub.Colorize(pb.ColorizeRequest(image=image, model="exemplar", options=options), timeout=10)
        assert missing.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "reference" in missing.value.details()
        stream = stub.ColorizeAll(pb.ColorizeAllRequest(image=image, options=options), timeout=30)
        statuses = {r.model: (r.status, r.error.code) for r in stream}
        assert statuses["wallner-beta"][0] == pb.MODEL_STATUS_OK
        assert statuses["exemplar"] == (pb.MODEL_STATUS_ERROR, "needs_reference")


def test_handler_takes_the_reference_field(weights_dir, tmp_path):
    import handler as handler_module
    from tests.unit.test_handler import FakeContext

    archive = tmp_path / "archive"
    archive.mkdir()
    for suffix in (".json", ".safetensors"):
        (archive / f"exemplar{suffix}").write_bytes((weights_dir / f"exemplar{suffix}").read_bytes())
    service, context = handler_module.ColorizerHandler(), FakeContext(archive)
    threads = torch.get_num_threads()
    try:
        service.initialize(context)
        grey = imaging.model_input_bytes(imaging.to_model_input(photo("chelsea", 96), 64))
        reference = to_bytes(other_view(photo("chelsea", 96)))
        out = service.handle([{"data": grey, "reference": reference, "size": b"64"}, {"data": grey}], context)
    finally:
        torch.set_num_threads(threads)
    assert Image.open(io.BytesIO(out[0])).size == (64, 64)
    assert context.status[1][0] == 400 and json.loads(out[1])["error"]["code"] == "needs_reference"


def test_cli_reference(weights_dir, tmp_path, capsys):
    target, reference = tmp_path / "old.png", tmp_path / "new.jpg"
    photo("chelsea", 96).save(target)
    other_view(photo("chelsea", 96)).save(reference)
    out = tmp_path / "out"
    common = ["-o", str(out), "--weights-dir", str(weights_dir), "--size", "64"]
    assert cli.main([str(target), "-m", "exemplar", "--reference", str(reference), *common]) == 0
    assert Image.open(out / "old.exemplar.png").size == (96, 96)
    assert cli.main([str(target), "-m", "exemplar", *common]) == 2
    assert "needs a reference" in capsys.readouterr().err
    assert cli.main([str(target), "-m", "wallner-beta", "--reference", str(reference), *common]) == 2
    assert "does not take a reference" in capsys.readouterr().err
