"""Published checkpoints, saved the way their authors' code saves them, imported and run end to end.

Each test builds the full (published-layout) model with random weights, saves its state_dict as the authors' code
does (Zhang: ``torch.save(model.state_dict())`` from stock BatchNorm2d, so every BatchNorm has a
``num_batches_tracked`` counter; DeOldify: fastai's ``{"model": state_dict}``), imports it with
``weights.import_published`` and checks what ``Colorizer`` (and the gateway, for DeOldify) computes against a
reference written here from the authors' pre- and post-processing.
"""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from colorizers import ab_gamut, create_model, imaging, weights
from colorizers.color import lab_to_rgb
from colorizers.conventions import ConventionError, Conventions
from colorizers.pipeline import Colorizer, Hint, hints_to_tensors
from tests.helpers import make_photo, to_bytes

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def _randomise_norms(model: torch.nn.Module, seed: int) -> None:
    """Non-trivial BatchNorm statistics, as trained weights have."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)


def authors_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The state_dict the authors' code saves: stock BatchNorm2d keeps a num_batches_tracked counter."""
    state = dict(model.state_dict())
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            state.setdefault(f"{name}.num_batches_tracked", torch.tensor(12345, dtype=torch.long))
    return state


def published(architecture: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = create_model(architecture, "full").eval()
    _randomise_norms(model, seed)
    return model


def import_as_authors_saved(architecture: str, model: torch.nn.Module, tmp_path, wrap: str | None = None):
    state = authors_state(model)
    assert any(k.endswith("num_batches_tracked") for k in state)
    checkpoint = tmp_path / f"{architecture}.pth"
    torch.save({wrap: state} if wrap else state, checkpoint)
    store = tmp_path / "store"
    weights.import_published(architecture, checkpoint, store)
    return store


def _rgb8(l: torch.Tensor, ab: torch.Tensor) -> np.ndarray:
    """L (1, 1, H, W) and ab (1, 2, H, W) -> uint8 RGB (H, W, 3), as the pipeline converts."""
    lab = torch.cat([l, ab], dim=1)[0].permute(1, 2, 0).double().numpy()
    return np.clip(lab_to_rgb(lab) * 255.0 + 0.5, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------------------------
# Zhang et al. 2016: decoded with T = 1 (the Caffe model's 2.606 logit scale is folded into the weights)
# --------------------------------------------------------------------------------------------------------------


def _moderate_logits(model: torch.nn.Module) -> None:
    """Scale the last 1x1 conv so the logits spread like a trained model's (std 2), where T visibly matters."""
    with torch.inference_mode():
        std = model(torch.rand(1, 1, 64, 64) * 100).std()
    with torch.no_grad():
        model.model8[-1].weight.mul_(2.0 / std)
        model.model8[-1].bias.mul_(2.0 / std)


def test_eccv16_x_decodes_with_the_plain_expectation(tmp_path):
    model = published("zhang-eccv16")
    _moderate_logits(model)
    store = import_as_authors_saved("zhang-eccv16", model, tmp_path)
    meta = weights.read_sidecar("zhang-eccv16-x", store)
    assert meta["dtype"] == "float32" and meta["conventions"] == {"temperature": 1.0}
    assert meta["model_args"]["temperature"] == 1.0  # the weights load right outside the pipeline too

    colorizer = Colorizer.load("zhang-eccv16-x", store, "cpu")
    assert colorizer.model.temperature == 1.0
    grey = colorizer.model_input(make_photo(64, 64), 64)
    out = np.asarray(colorizer.colorize_working(grey))

    # The authors' forward: model1..model8, softmax, model_out (the bin centres / 110), x 110, bilinear x4.
    l = torch.from_numpy(imaging.lightness(grey))[None, None]  # (1, 1, 64, 64)
    with torch.inference_mode():
        x = (l - 50.0) / 100.0
        for i in range(1, 9):
            x = getattr(model, f"model{i}")(x)
        ab = model.model_out(torch.softmax(x, dim=1)) * 110.0  # (1, 2, 16, 16)
        ab = F.interpolate(ab, scale_factor=4, mode="bilinear", align_corners=False)
        reference = _rgb8(l, ab)
        twice = F.interpolate(ab_gamut.annealed_mean(x, model.bin_centres(), 0.38), scale_factor=4, mode="bilinear")
        annealed = _rgb8(l, twice)
    assert np.abs(out.astype(int) - reference).max() <= 1
    assert np.abs(out.astype(int) - annealed).max() > 2  # annealing twice would be visibly different

    # The temperature is per-model configuration: the sidecar's conventions.
    meta["conventions"]["temperature"] = 0.38
    (store / "zhang-eccv16-x.json").write_text(json.dumps(meta))
    warm = Colorizer.load("zhang-eccv16-x", store, "cpu")
    assert warm.model.temperature == 0.38
    assert np.abs(np.asarray(warm.colorize_working(grey)).astype(int) - annealed).max() <= 1


def test_eccv16_bins_match_the_published_model_out(tmp_path):
    """The full model is built with the published bin centres, so an imported model_out holds the same ones."""
    model = create_model("zhang-eccv16", "full")
    torch.testing.assert_close(model.bin_centres(), ab_gamut.bin_centres(), rtol=0, atol=1e-4)


# --------------------------------------------------------------------------------------------------------------
# Zhang et al. 2017: the released weights read the hint mask as given
# --------------------------------------------------------------------------------------------------------------


def _siggraph17_reference(model, l, hint_ab, mask, mask_offset):
    """The authors' forward (their PyTorch port), on the model's own layers."""
    x = torch.cat([(l - 50.0) / 100.0, hint_ab / 110.0, mask - mask_offset], dim=1)
    conv1 = model.model1(x)
    conv2 = model.model2(conv1[:, :, ::2, ::2])
    conv3 = model.model3(conv2[:, :, ::2, ::2])
    conv = model.model4(conv3[:, :, ::2, ::2])
    conv = model.model7(model.model6(model.model5(conv)))
    conv8 = model.model8(model.model8up(conv) + model.model3short8(conv3))
    conv9 = model.model9(model.model9up(conv8) + model.model2short9(conv2))
    conv10 = model.model10(model.model10up(conv9) + model.model1short10(conv1))
    return model.model_out(conv10) * 110.0


def test_siggraph17_x_feeds_the_mask_without_offset(tmp_path):
    model = published("zhang-siggraph17", seed=1)
    store = import_as_authors_saved("zhang-siggraph17", model, tmp_path)
    meta = weights.read_sidecar("zhang-siggraph17-x", store)
    assert meta["dtype"] == "float32" and meta["conventions"] == {"hint_mask_offset": 0.0}

    colorizer = Colorizer.load("zhang-siggraph17-x", store, "cpu")
    assert colorizer.model.hint_mask_offset == 0.0
    hints = [Hint(0.3, 0.4, (200, 40, 40)), Hint(0.7, 0.7, (30, 60, 200))]
    grey = colorizer.model_input(make_photo(64, 64), 64)
    out = np.asarray(colorizer.colorize_working(grey, hints=hints)).astype(int)

    l = torch.from_numpy(imaging.lightness(grey))[None, None]
    hint_ab, mask = hints_to_tensors(hints, 64, 64)
    with torch.inference_mode():
        reference = _siggraph17_reference(model, l, hint_ab * mask, mask, 0.0)  # (1, 2, 64, 64)
        project = _siggraph17_reference(model, l, hint_ab * mask, mask, 0.5)
        served = colorizer.model.predict_ab(l, hint_ab=hint_ab, hint_mask=mask)
    assert np.abs(out - _rgb8(l, reference)).max() <= 1
    torch.testing.assert_close(served, reference, rtol=0, atol=1e-3)
    assert (served - project).abs().max() > 0.1  # mask - 0.5 would compute something else


# --------------------------------------------------------------------------------------------------------------
# DeOldify: its own pre- and post-processing
# --------------------------------------------------------------------------------------------------------------


def deoldify_reference(model: torch.nn.Module, photo: Image.Image, render: int) -> Image.Image:
    """DeOldify's filter, written from its description: a bilinear square, Pillow's LA grey as RGB, the generator
    on ImageNet-normalised [0, 1] input, its output denormalised, clipped and truncated to 8 bits, stretched back
    (bilinear) and merged in YCbCr: the photo's Y, the result's Cb and Cr."""
    square = photo.convert("RGB").resize((render, render), Image.Resampling.BILINEAR).convert("LA").convert("RGB")
    x = torch.from_numpy(np.asarray(square, dtype=np.float32)).permute(2, 0, 1)[None] / 255.0
    with torch.inference_mode():
        y = model((x - MEAN) / STD)
    out = (y * STD + MEAN).clamp(0.0, 1.0)[0].permute(1, 2, 0).numpy()
    raw = Image.fromarray((out * 255).astype(np.uint8)).resize(photo.size, Image.Resampling.BILINEAR)
    merged = np.asarray(photo.convert("YCbCr")).copy()
    merged[..., 1:] = np.asarray(raw.convert("YCbCr"))[..., 1:]
    return Image.fromarray(merged, "YCbCr").convert("RGB")


@pytest.fixture(scope="module")
def artistic_x(tmp_path_factory):
    """deoldify-artistic imported once from a fastai-style {"model": state_dict} file (counters included)."""
    tmp_path = tmp_path_factory.mktemp("artistic")
    model = published("deoldify-artistic", seed=2)
    return import_as_authors_saved("deoldify-artistic", model, tmp_path, wrap="model"), model


def test_deoldify_x_runs_the_authors_pre_and_post_processing(artistic_x):
    store, model = artistic_x
    meta = weights.read_sidecar("deoldify-artistic-x", store)
    assert meta["dtype"] == "float32"
    assert meta["conventions"] == {"preprocess": "deoldify", "render_factor": 35, "merge": "ycbcr"}
    assert meta["working_size"] == 560
    colorizer = Colorizer.load("deoldify-artistic-x", store, "cpu")
    assert colorizer.working_size == 560

    photo = make_photo(90, 70, seed=3)
    out = np.asarray(colorizer.colorize(photo, size=64)).astype(int)
    reference = np.asarray(deoldify_reference(model, photo, 64)).astype(int)
    assert out.shape == reference.shape == (70, 90, 3)
    assert np.abs(out - reference).max() <= 1 and np.abs(out - reference).mean() < 0.01
    # The project's pipeline (CIE-L grey, bicubic, Lab merge) gives other colours with the same weights.
    project = Colorizer(colorizer.model, meta={}, device="cpu").colorize(photo, size=64)
    assert np.abs(np.asarray(project).astype(int) - reference).mean() > 1.0
    # size is the render size, rounded down to a multiple of 16.
    assert colorizer.model_size(79) == 64 and colorizer.model_input(photo, 79).size == (64, 64)
    # A photo with alpha keeps it.
    translucent = photo.convert("RGBA")
    translucent.putalpha(100)
    with_alpha = colorizer.colorize(to_bytes(translucent), size=64)
    assert with_alpha.mode == "RGBA" and np.array_equal(np.asarray(with_alpha.convert("RGB")), out)


def test_deoldify_x_through_the_handler_and_the_gateway(artistic_x, tmp_path):
    """A render factor of 4 (64 px) set in the sidecar is what every serving path uses."""

    import handler as handler_module
    from gateway.settings import Settings
    from tests.unit.test_handler import FakeContext

    store, model = artistic_x
    served = tmp_path / "served"
    served.mkdir()
    shutil.copy(store / "deoldify-artistic-x.safetensors", served)
    meta = weights.read_sidecar("deoldify-artistic-x", store)
    meta["conventions"]["render_factor"] = 4
    (served / "deoldify-artistic-x.json").write_text(json.dumps(meta))
    photo = make_photo(100, 60, seed=4)

    # The TorchServe handler: the working-size result, from the raw photo.
    service = handler_module.ColorizerHandler()
    context = FakeContext(served)
    threads = torch.get_num_threads()
    try:
        service.initialize(context)  # sets the worker's torch threads: the reference runs on as many, as sums of
        # floats (truncated to 8 bits by DeOldify's post-processing) depend on how a convolution is split
        reference, reference_48 = (np.asarray(deoldify_reference(model, photo, r)).astype(int) for r in (64, 48))
        working = Image.open(io.BytesIO(service.handle([{"data": to_bytes(photo)}], context)[0]))
    finally:
        torch.set_num_threads(threads)
    assert working.size == (64, 64)
    merged = np.asarray(imaging.merge_chroma(photo, working, merge="ycbcr")).astype(int)
    assert np.abs(merged - reference).max() <= 1

    # The gateway (embedded backend): grey made, and the result merged, as the conventions say.
    settings = Settings(
        backend="embedded", grpc_port=0, weights_dir=served, models=["deoldify-artistic-x"],
        result_dir=tmp_path / "results", readiness_probe_seconds=60,
    )
    torch.set_num_threads(1)  # as the references were made
    try:
        responses = served_by_the_gateway(settings, photo)
    finally:
        torch.set_num_threads(threads)
    for response, render in zip(responses, (64, 48), strict=True):
        assert response.status_code == 200, response.text
        served_image = np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB")).astype(int)
        expected = reference if render == 64 else reference_48
        assert np.abs(served_image - expected).max() <= 1


def served_by_the_gateway(settings, photo):
    from fastapi.testclient import TestClient

    from gateway.app import create_app

    with TestClient(create_app(settings)) as client:
        listed = {m["id"]: m for m in client.get("/v1/models").json()["models"]}
        assert listed["deoldify-artistic-x"]["working_size"] == 64
        return [
            client.post(
                "/v1/colorize", files=[("images", ("p.png", to_bytes(photo), "image/png"))],
                data={"model": "deoldify-artistic-x", **extra}, headers={"Accept": "image/png"},
            )
            for extra in ({}, {"size": "50"})  # a request's size is the render size, rounded down to 48
        ]


def test_deoldify_preprocessing_and_ycbcr_merge():
    photo = make_photo(50, 30, seed=5)
    grey = imaging.to_model_input(photo, 32, preprocess="deoldify")
    expected = photo.resize((32, 32), Image.Resampling.BILINEAR).convert("LA").convert("RGB")
    assert grey.mode == "L" and np.array_equal(np.asarray(grey.convert("RGB")), np.asarray(expected))
    colour = Image.blend(Image.new("RGB", (32, 32), (128, 128, 128)), make_photo(32, 32, seed=6), 0.3)  # in gamut
    merged = imaging.merge_chroma(photo, colour, merge="ycbcr")
    assert merged.size == photo.size
    y_in = np.asarray(photo.convert("YCbCr"))[..., 0].astype(int)
    y_out = np.asarray(merged.convert("YCbCr"))[..., 0].astype(int)
    assert np.abs(y_in - y_out).max() <= 3  # the photo's own Y, up to 8-bit round trips in Pillow
    with pytest.raises(ValueError, match="unknown merge"):
        imaging.merge_chroma(photo, colour, merge="yuv")


# --------------------------------------------------------------------------------------------------------------
# Conventions and the importer's handling of files
# --------------------------------------------------------------------------------------------------------------


def test_conventions_are_checked():
    assert Conventions.of({}).as_dict() == {}
    assert Conventions.of({"conventions": {"temperature": 1.0}}).temperature == 1.0
    with pytest.raises(ConventionError, match="unknown conventions"):
        Conventions.from_dict({"temprature": 1.0})
    with pytest.raises(ConventionError, match="preprocess"):
        Conventions(preprocess="opencv")
    with pytest.raises(ConventionError, match="render_factor"):
        Conventions(render_factor=35)
    with pytest.raises(ConventionError, match="has no hint_mask_offset"):
        Colorizer(create_model("zhang-eccv16", "tiny"), meta={"conventions": {"hint_mask_offset": 0.0}}, device="cpu")


def test_reader_unwraps_and_strips_and_explains(tmp_path):
    state = {"a.weight": torch.zeros(2), "b.running_mean": torch.ones(1)}
    for i, obj in enumerate(
        [
            state,
            {"model": state, "opt": {"lr": 0.1, "state": {}}},
            {"state_dict": state, "epoch": 3},
            {"module." + k: v for k, v in state.items()},
        ]
    ):
        path = tmp_path / f"ok{i}.pth"
        torch.save(obj, path)
        assert set(weights.read_published_checkpoint(path)) == set(state)
    bad = tmp_path / "bad.pth"
    torch.save({"a.weight": torch.zeros(2), "epoch": 3}, bad)
    with pytest.raises(weights.WeightsError, match="not a state_dict of tensors; other entries: epoch"):
        weights.read_published_checkpoint(bad)
    torch.save([torch.zeros(1)], bad)
    with pytest.raises(weights.WeightsError, match="holds list, not a state_dict"):
        weights.read_published_checkpoint(bad)
    with pytest.raises(weights.WeightsError, match="no checkpoint file"):
        weights.read_published_checkpoint(tmp_path / "missing.pth")
    torch.save(torch.nn.Linear(1, 1), bad)  # a whole pickled model
    with pytest.raises(weights.WeightsError, match="cannot read checkpoint .* save its state_dict instead"):
        weights.read_published_checkpoint(bad)


def test_only_batchnorm_counters_are_forgiven(tmp_path):
    model = create_model("zhang-eccv16", "full")
    state = authors_state(model)
    fitted = weights.fit_published_state(model, state)
    assert set(fitted) == set(model.state_dict())
    with pytest.raises(weights.WeightsError, match="unexpected: model9.num_batches_tracked"):
        weights.load_state(model, weights.fit_published_state(model, {**state, "model9.num_batches_tracked": 1}))


def test_fp16_is_kept_only_where_the_check_allows(tmp_path, monkeypatch):
    checkpoint = tmp_path / "eccv16.pth"
    torch.save(authors_state(published("zhang-eccv16")), checkpoint)
    monkeypatch.setattr(weights, "HALF_TOLERANCE_MEAN", -1.0)
    with pytest.raises(weights.WeightsError, match="import it in float32"):
        weights.import_published("zhang-eccv16", checkpoint, tmp_path / "refused", half=True)
    monkeypatch.setattr(weights, "HALF_TOLERANCE_MEAN", 1e9)
    weights.import_published("zhang-eccv16", checkpoint, tmp_path / "store", half=True)
    meta = weights.read_sidecar("zhang-eccv16-x", tmp_path / "store")
    assert meta["dtype"] == "float16" and meta["half_check"]["max_abs_rgb"] >= 0
    assert meta["conventions"] == {"temperature": 1.0}
