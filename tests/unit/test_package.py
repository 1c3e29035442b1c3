"""Packaging: archives carry handler, weights, sidecar, model-config and the colorizers package."""

from __future__ import annotations

import zipfile

import torch
import yaml

from colorizers import create_model, weights
from training.__main__ import main as training_main
from training.package import model_config, version_of


def test_version_comes_from_the_sidecar_date():
    assert version_of({"created": "2026-11-23T10:15:07+00:00"}) == "20261123.101507"


def test_model_config_rejects_unknown_keys():
    assert model_config(batchSize=8)["batchSize"] == 8
    try:
        model_config(batchsize=8)
    except ValueError as exc:
        assert "batchsize" in str(exc)
    else:
        raise AssertionError("unknown key accepted")


def test_package_all_builds_one_archive_per_weights_file(tmp_path):
    weights_dir, store = tmp_path / "weights", tmp_path / "store"
    for name in ("wallner-beta", "coloria-cnn"):
        weights.save(create_model(name, "tiny"), weights_dir)
    code = training_main(
        ["package", "all", "--weights-dir", str(weights_dir), "--model-store", str(store), "--device-type", "gpu",
         "--batch-size", "8", "--workers", "2"]
    )
    assert code == 0 and sorted(p.name for p in store.glob("*.mar")) == ["coloria-cnn.mar", "wallner-beta.mar"]
    with zipfile.ZipFile(store / "coloria-cnn.mar") as zf:
        names = set(zf.namelist())
        config = yaml.safe_load(zf.read("model-config.yaml"))
    assert {"handler.py", "coloria-cnn.safetensors", "coloria-cnn.json", "colorizers/pipeline.py"} <= names
    assert config["deviceType"] == "gpu" and config["batchSize"] == 8 and config["maxWorkers"] == 2


def test_archive_of_a_compact_model_is_self_contained(tmp_path, monkeypatch):
    from safetensors.torch import load

    from colorizers.models.pretrained import load_encoder_weights

    model = create_model("wallner-beta", "compact")
    load_encoder_weights(model)
    weights.save(model, tmp_path / "weights")
    assert training_main(["package", "wallner-beta", "--weights-dir", str(tmp_path / "weights"),
                          "--model-store", str(tmp_path / "store")]) == 0
    with zipfile.ZipFile(tmp_path / "store" / "wallner-beta.mar") as zf:
        state = load(zf.read("wallner-beta.safetensors"))
        sidecar = yaml.safe_load(zf.read("wallner-beta.json"))
    assert sidecar["backbone"]["joined"] is True
    assert set(state) == set(model.state_dict())  # the frozen encoder travels inside the archive
    monkeypatch.setattr("colorizers.weights.backbone_state", lambda ref: (_ for _ in ()).throw(AssertionError(ref)))
    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(tmp_path / "store" / "wallner-beta.mar") as zf:
        zf.extractall(unpacked)
    loaded, _ = weights.load("wallner-beta", unpacked)  # no package needed to serve it
    assert loaded.chroma_gain == 1.0


def test_package_of_a_model_without_weights_fails_clearly(tmp_path, capsys):
    assert training_main(["package", "nope", "--weights-dir", str(tmp_path), "--model-store", str(tmp_path)]) == 2
    assert "no weights for model 'nope'" in capsys.readouterr().out


def test_import_weights_command(tmp_path):
    checkpoint = tmp_path / "eccv16.pth"
    model = create_model("zhang-eccv16", "full")
    norms = [n for n, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)]
    counters = {f"{n}.num_batches_tracked": torch.tensor(1) for n in norms}
    torch.save({**model.state_dict(), **counters}, checkpoint)  # as the authors' code saves it
    weights_dir, store = tmp_path / "weights", tmp_path / "store"
    code = training_main(
        ["import-weights", str(checkpoint), "--family", "zhang-eccv16", "--weights-dir", str(weights_dir),
         "--model-store", str(store)]
    )
    assert code == 0
    meta = weights.read_sidecar("zhang-eccv16-x", weights_dir)
    assert meta["provenance"] == "imported" and meta["dtype"] == "float32"
    assert meta["conventions"] == {"temperature": 1.0}
    assert (store / "zhang-eccv16-x.mar").exists()
