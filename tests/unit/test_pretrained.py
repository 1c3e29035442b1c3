"""The pretrained EfficientNet-Lite backbone and the compact models that stand on it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from skimage import data

from colorizers import backbone, color, create_model, list_models, weights
from colorizers.color import rgb_to_lab_t
from colorizers.models.pretrained import (
    FrozenEncoder,
    PretrainedColorizer,
    confident_chroma,
    load_encoder_weights,
    provided_features,
)
from training import calibrate, features

COMPACT_ON_ENCODER = [s.id for s in list_models(served_only=True) if "backbone" in s.variants["compact"]]
MAX_WEIGHTS_BYTES = 8_000_000  # each shipped model, float16, without its backbone


def grey_224(image: np.ndarray) -> torch.Tensor:
    rgb = torch.from_numpy(image).permute(2, 0, 1).float()[None] / 255  # (1, 3, H, W)
    rgb = torch.nn.functional.interpolate(rgb, size=(224, 224), mode="bilinear", antialias=True)
    return rgb_to_lab_t(rgb)[:, :1]  # (1, 1, 224, 224) CIE L


@pytest.mark.parametrize("name", sorted(backbone.BACKBONES))
def test_layout_equals_the_published_file(name):
    published = backbone.pretrained_state(name)
    own = backbone.EfficientNetLite(name).state_dict()
    assert {k: tuple(v.shape) for k, v in own.items()} == {k: tuple(v.shape) for k, v in published.items()}


@pytest.mark.parametrize(("photo", "imagenet_class"), [("chelsea", 285), ("coffee", 967)])
def test_classifies_a_grey_photo(photo, imagenet_class):
    net = backbone.load_pretrained("efficientnet-lite0")
    with torch.inference_mode():
        probs = net(backbone.grey_input(grey_224(getattr(data, photo)()))).softmax(dim=1)  # (1, 1000)
    assert int(probs.argmax()) == imagenet_class and float(probs.max()) > 0.5


def test_a_file_with_another_checksum_is_refused(monkeypatch):
    file = backbone.BACKBONES["efficientnet-lite0"]
    monkeypatch.setitem(backbone.BACKBONES, file.name, type(file)(**{**file.__dict__, "sha256": "0" * 64}))
    with pytest.raises(backbone.BackboneError, match="refusing"):
        backbone.pretrained_state(file.name)


@pytest.mark.parametrize("model_id", COMPACT_ON_ENCODER)
def test_compact_model_keeps_the_encoder_frozen_and_fits_the_size_limit(model_id):
    model = create_model(model_id, "compact")
    assert isinstance(model, PretrainedColorizer)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable * 2 <= MAX_WEIGHTS_BYTES
    assert not any(p.requires_grad for p in model.encoder.parameters())
    model.train()
    assert not model.encoder.training  # ImageNet statistics never change
    with torch.inference_mode():
        ab = model.eval().predict_ab(torch.rand(1, 1, 70, 90) * 100)
    assert ab.shape == (1, 2, 70, 90) and torch.isfinite(ab).all()


def test_weights_store_the_backbone_by_reference_and_join_it(tmp_path):
    model = create_model("wallner-beta", "compact").eval()
    load_encoder_weights(model)
    path = weights.save(model, tmp_path)
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["backbone"]["sha256"] == backbone.BACKBONES["efficientnet-lite0"].sha256
    assert path.stat().st_size < 2_000_000  # the 4.7 M backbone parameters are not in the file
    loaded, _ = weights.load("wallner-beta", tmp_path)
    l = torch.rand(1, 1, 64, 64) * 100
    with torch.inference_mode():
        assert (loaded.predict_ab(l) - model.predict_ab(l)).abs().max() < 0.5  # float16 head
    state, joined_meta = weights.joined("wallner-beta", tmp_path)
    assert joined_meta["backbone"]["joined"] and any(k.startswith("encoder.net._blocks") for k in state)


def test_chroma_gain_scales_automatic_colour_but_not_hinted_pictures():
    torch.manual_seed(0)
    model = create_model("zhang-siggraph17", "compact").eval()
    l = torch.rand(2, 1, 64, 64) * 100
    mask = torch.zeros(2, 1, 64, 64)
    mask[1, :, 30:33, 30:33] = 1
    hint_ab = torch.zeros(2, 2, 64, 64)
    with torch.inference_mode():
        full = model.predict_ab(l, hint_ab=hint_ab, hint_mask=mask)
        model.chroma_gain = 0.5
        scaled = model.predict_ab(l, hint_ab=hint_ab, hint_mask=mask)
    torch.testing.assert_close(scaled[0], full[0] * 0.5)
    torch.testing.assert_close(scaled[1], full[1])


def test_provided_features_replace_the_encoder_pass():
    model = create_model("wallner-full", "compact").eval()
    l = torch.rand(1, 1, 64, 64) * 100
    live = model.encoder(l)
    with torch.inference_mode():
        expected = model(l)
        with provided_features(model, {k: v * 0 for k, v in live.items()}):
            zeroed = model(l)
        assert model.encoder.provided is None
        assert not torch.equal(zeroed, expected)
        with provided_features(model, live):
            torch.testing.assert_close(model(l), expected)


def test_cached_dataset_crops_features_in_step_with_the_picture(tmp_path):
    files = []
    for i in range(2):
        path = tmp_path / f"crop{i}.png"
        from PIL import Image

        Image.fromarray((np.random.default_rng(i).random((64, 64, 3)) * 255).astype(np.uint8)).save(path)
        files.append(path)
    cache = features.load_or_compute(tmp_path / "cache", "efficientnet-lite0", files, 64)
    assert cache["rgb"].shape == (2, 3, 64, 64) and cache["feat:4"].shape == (2, 2, 24, 16, 16)
    assert features.cache_path(tmp_path / "cache", "efficientnet-lite0", files, 64).is_file()
    dataset = features.CachedFeatureDataset(cache, crop=32, seed=1)
    sample = dataset[0]
    assert sample["l"].shape == (1, 32, 32) and sample["feat:4"].shape == (24, 8, 8)
    assert sample["feat:32"].shape == (320, 1, 1) and sample["feat:embedding"].shape == (1280,)
    batch = {k: v[None] for k, v in sample.items()}
    found = features.split_features(batch)
    assert set(found) == {4, 8, 16, 32, "embedding", "logits"} and set(batch) == {"rgb", "l", "ab"}


def test_frozen_encoder_is_shared_by_name():
    assert FrozenEncoder("efficientnet-lite2").channels == {4: 24, 8: 48, 16: 120, 32: 352}


def test_encoder_features_do_not_depend_on_the_batch():
    encoder = FrozenEncoder("efficientnet-lite0")
    l = torch.rand(3, 1, 64, 64) * 100
    alone = encoder(l[:1])[8]
    together = encoder(l)[8][:1]
    torch.testing.assert_close(alone, together, atol=1e-4, rtol=1e-4)


def test_confident_chroma_drops_weak_chroma_and_keeps_strong():
    ab = torch.tensor([[3.0, 30.0], [4.0, 40.0]]).view(1, 2, 1, 2)  # (a, b) = (3, 4) and (30, 40): chroma 5, 50
    out = confident_chroma(ab, floor=10.0, gain=2.0)
    torch.testing.assert_close(out[..., 0], torch.zeros(1, 2, 1))
    torch.testing.assert_close(torch.linalg.vector_norm(out[..., 1], dim=1), torch.tensor([[80.0]]))
    torch.testing.assert_close(confident_chroma(ab, 0.0, 0.5), ab * 0.5)


def test_flip_average_is_the_mean_with_the_mirrored_prediction():
    torch.manual_seed(0)
    model = create_model("zhang-siggraph17", "compact").eval()
    l = torch.rand(1, 1, 40, 72) * 100  # padded to 64 x 96 inside: the mirror must line up again
    with torch.inference_mode():
        plain = model.predict_ab(l)
        mirrored = model.predict_ab(l.flip(-1)).flip(-1)
        model.flip_average = True
        averaged = model.predict_ab(l)
        hint_ab, mask = torch.zeros(2, 2, 40, 72), torch.zeros(2, 1, 40, 72)
        mask[1, :, 10, 10] = 1.0  # the second picture has a hint, the first none (as the pipeline sends them)
        batch = model.predict_ab(l.expand(2, -1, -1, -1), hint_ab=hint_ab, hint_mask=mask)
        model.flip_average = False
        hinted_once = model.predict_ab(l, hint_ab=hint_ab[1:], hint_mask=mask[1:])
    torch.testing.assert_close(averaged, 0.5 * (plain + mirrored), atol=1e-4, rtol=1e-4)
    assert (plain - mirrored).abs().max() > 1e-3  # not trivially symmetric
    torch.testing.assert_close(batch[:1], averaged, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(batch[1:], hinted_once, atol=1e-4, rtol=1e-4)  # a user's hints: no mirrored pass


def test_calibration_mirrors_only_where_it_pays():
    single = {"delta_e00": 10.0, "cf_ratio": 0.6, "flip": False}
    slightly = {"delta_e00": 9.95, "cf_ratio": 0.6, "flip": True}
    clearly = {"delta_e00": 9.8, "cf_ratio": 0.6, "flip": True}
    dull = {"delta_e00": 9.5, "cf_ratio": 0.45, "flip": True}
    assert calibrate.choose_with_flip([single, slightly], grey=11.0) == single  # not worth twice the model pass
    assert calibrate.choose_with_flip([single, clearly], grey=11.0) == clearly
    assert calibrate.choose_with_flip([single, dull], grey=11.0) == single  # below the colourfulness bar
    assert calibrate.choose_with_flip([single], grey=11.0) == single  # a search without the mirrored picture


def test_calibration_prefers_colourful_settings_that_beat_grey():
    rows = [
        {"delta_e00": 9.0, "cf_ratio": 0.3},
        {"delta_e00": 9.5, "cf_ratio": 0.6},
        {"delta_e00": 9.8, "cf_ratio": 0.9},
        {"delta_e00": 11.0, "cf_ratio": 1.0},
    ]
    assert calibrate.choose(rows, grey=10.0) == rows[1]
    assert calibrate.choose(rows[:1] + rows[3:], grey=10.0) == rows[0]  # nothing colourful beats grey
    assert calibrate.choose(rows[3:], grey=10.0) == rows[3]
    barely = [{"delta_e00": 9.0, "cf_ratio": 0.502}, {"delta_e00": 9.4, "cf_ratio": 0.52}]
    assert calibrate.choose(barely, grey=10.0) == barely[1]  # the fit clears the colourfulness bar by a margin


def test_calibrate_writes_the_decoding_into_the_sidecar(tmp_path):
    from PIL import Image

    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(2):
        rng = np.random.default_rng(i)
        rgb = np.kron(rng.integers(0, 255, (4, 4, 3)), np.ones((16, 16, 1))).astype(np.uint8)  # colour blocks
        Image.fromarray(rgb).save(photos / f"p{i}.png")
    torch.manual_seed(0)
    model = create_model("wallner-beta", "compact")
    load_encoder_weights(model)
    weights.save(model, tmp_path / "w", working_size=64)
    record = calibrate.calibrate("wallner-beta", photos, tmp_path / "w")
    meta = json.loads((tmp_path / "w" / "wallner-beta.json").read_text())
    chosen = record["chosen"]
    assert meta["model_args"]["chroma_gain"] == chosen["gain"] and meta["model_args"]["chroma_floor"] == chosen["floor"]
    assert meta["model_args"]["flip_average"] is chosen["flip"]
    assert meta["calibration"]["photos"] == 2 and record["grey_delta_e00"] > 0
    loaded, _ = weights.load("wallner-beta", tmp_path / "w")
    assert loaded.chroma_gain == chosen["gain"]


def test_calibration_searches_every_combination_of_a_models_knobs():
    eccv16 = create_model("zhang-eccv16", "compact")
    grid = calibrate.knob_grid(eccv16)
    priors, temperatures = calibrate.DECODING_KNOBS["prior_strength"], calibrate.DECODING_KNOBS["temperature"]
    assert len(grid) == len(priors) * len(temperatures) and set(grid[0]) == {"prior_strength", "temperature"}
    assert {(g["prior_strength"], g["temperature"]) for g in grid} == {(p, t) for p in priors for t in temperatures}
    assert calibrate.knob_grid(create_model("wallner-beta", "tiny")) == [{}]


def test_a_subsampled_decoding_table_estimates_the_full_one():
    from PIL import Image

    from training.evaluate.inputs import Photo
    from training.metrics import colourfulness

    rng = np.random.default_rng(0)
    smooth = np.kron(rng.uniform(0, 1, (8, 8, 3)), np.ones((12, 12, 1)))  # (96, 96, 3) blocks of colour
    truth = (smooth * 255).astype(np.uint8)
    output = color.rgb_to_lab(np.clip(truth.astype(int) + rng.integers(-30, 30, truth.shape), 0, 255).astype(np.uint8))
    photo = Photo("p.png", truth, Image.fromarray(color.rgb8_to_gray8(truth)), colourfulness(truth))
    kwargs = {"floors": (0.0, 8.0), "gains": (1.0, 1.5)}
    full = calibrate.decode_table([output], [photo], [color.rgb_to_lab(truth)], **kwargs)
    sampled = calibrate.decode_table([output], [photo], [color.rgb_to_lab(truth)], stride=3, **kwargs)
    assert [(r["floor"], r["gain"]) for r in sampled] == [(r["floor"], r["gain"]) for r in full]
    for exact, estimate in zip(full, sampled, strict=True):
        assert estimate["delta_e00"] == pytest.approx(exact["delta_e00"], rel=0.05)
        assert estimate["cf_ratio"] == pytest.approx(exact["cf_ratio"], rel=0.05)
    assert full[0]["delta_e00"] < full[1]["delta_e00"]  # a floor makes the (right) colours worse here


def test_calibration_scores_the_tables_best_settings_as_served():
    rows = [{"delta_e00": 10.0 - i / 10, "cf_ratio": 0.6 if i % 2 else 0.4, "flip": i >= 10} for i in range(20)]
    picked = calibrate.finalists(rows, grey=11.0, count=2)
    assert picked == [rows[9], rows[7], rows[19], rows[17]]  # colourful enough, lowest first, in each group
    dull = [{"delta_e00": 9.0, "cf_ratio": 0.3, "flip": False}, {"delta_e00": 10.0, "cf_ratio": 0.35, "flip": False}]
    assert calibrate.finalists(dull, grey=11.0) == [dull[1]]  # nothing colourful: what choose() falls back to
