"""Weights on disk: safetensors + sidecar round trip, strict loading, published-checkpoint import."""

from __future__ import annotations

import json

import pytest
import torch

from colorizers import create_model, list_models, weights
from colorizers.conventions import Conventions

IDS = [s.id for s in list_models()]


@pytest.mark.parametrize("model_id", IDS)
def test_save_and_load_round_trip(tmp_path, model_id):
    torch.manual_seed(0)
    model = create_model(model_id, "tiny").eval()
    weights.save(model, tmp_path, half=False, variant="tiny", recipe="test", steps=3)
    loaded, meta = weights.load(model_id, tmp_path)
    assert meta["name"] == meta["architecture"] == model_id
    assert meta["variant"] == "tiny" and meta["steps"] == 3 and meta["provenance"] == "trained"
    l = torch.rand(1, 1, 64, 64) * 100  # (B, 1, H, W)
    with torch.inference_mode():
        torch.testing.assert_close(loaded.predict_ab(l), model.predict_ab(l))


def test_half_precision_file_is_smaller_and_close(tmp_path):
    torch.manual_seed(0)
    model = create_model("coloria-cnn", "tiny").eval()
    full = weights.save(model, tmp_path / "fp32", half=False)
    half = weights.save(model, tmp_path / "fp16", half=True)
    assert half.stat().st_size < full.stat().st_size
    loaded, meta = weights.load("coloria-cnn", tmp_path / "fp16")
    assert meta["dtype"] == "float16"
    l = torch.rand(1, 1, 64, 64) * 100
    with torch.inference_mode():
        assert (loaded.predict_ab(l) - model.predict_ab(l)).abs().max() < 1.0


def test_available_lists_sidecars_with_weights(tmp_path):
    weights.save(create_model("wallner-beta", "tiny"), tmp_path)
    (tmp_path / "orphan.json").write_text(json.dumps({"name": "orphan"}))
    assert list(weights.available(tmp_path)) == ["wallner-beta"]


def test_mismatched_weights_name_the_problem(tmp_path):
    weights.save(create_model("wallner-beta", "tiny"), tmp_path)
    sidecar = tmp_path / "wallner-beta.json"
    meta = json.loads(sidecar.read_text())
    meta["model_args"] = create_model("wallner-beta", "full").model_args
    sidecar.write_text(json.dumps(meta))
    with pytest.raises(weights.WeightsError, match="wrong shape"):
        weights.load("wallner-beta", tmp_path)


def test_missing_weights_raise_a_clear_error(tmp_path):
    with pytest.raises(weights.WeightsError, match="no weights for model"):
        weights.load("wallner-beta", tmp_path)


@pytest.mark.parametrize(
    "architecture",
    [pytest.param(a, marks=pytest.mark.slow) if a == "deoldify-stable" else a for a in weights.IMPORTABLE],
)
def test_import_published_checkpoint(tmp_path, architecture):
    """A checkpoint saved as its authors' code saves it (random values, BatchNorm counters included) imports in
    float32 by default and computes exactly what the published model computes; the sidecar says how to use it."""
    torch.manual_seed(0)
    published = create_model(architecture, "full").eval()
    state = dict(published.state_dict())
    for name, module in published.named_modules():  # stock BatchNorm2d saves a counter; Zhang's keep none here
        if isinstance(module, torch.nn.BatchNorm2d):
            state.setdefault(f"{name}.num_batches_tracked", torch.tensor(100))
    checkpoint = tmp_path / "published.pth"
    torch.save({"model": state} if architecture.startswith("deoldify") else state, checkpoint)  # as each saves it
    path = weights.import_published(architecture, checkpoint, tmp_path / "store")
    assert path.name == f"{architecture}-x.safetensors"
    imported, meta = weights.load(f"{architecture}-x", tmp_path / "store")
    assert meta["provenance"] == "imported" and meta["architecture"] == architecture and meta["variant"] == "full"
    assert meta["dtype"] == "float32" and meta["conventions"]
    Conventions.of(meta).apply(published)  # e.g. siggraph17-x reads the hint mask without the 0.5 offset
    x = torch.rand(1, 3 if architecture.startswith("deoldify") else 1, 64, 64)
    x = x if architecture.startswith("deoldify") else x * 100  # ImageNet-normalised-ish RGB, or L
    with torch.inference_mode():
        torch.testing.assert_close(imported(x), published(x), rtol=0, atol=0)  # float32: bit for bit
    del published, imported


def test_import_rejects_a_checkpoint_of_the_wrong_layout(tmp_path):
    checkpoint = tmp_path / "wrong.pth"
    torch.save(create_model("zhang-eccv16", "tiny").state_dict(), checkpoint)
    with pytest.raises(weights.WeightsError, match="do not fit"):
        weights.import_published("zhang-eccv16", checkpoint, tmp_path / "store")


def test_import_refuses_pickled_code(tmp_path):
    checkpoint = tmp_path / "evil.pth"
    torch.save({"model": {"x": torch.zeros(1)}, "callback": print}, checkpoint)
    with pytest.raises(weights.WeightsError, match="cannot read checkpoint"):
        weights.read_published_checkpoint(checkpoint)
