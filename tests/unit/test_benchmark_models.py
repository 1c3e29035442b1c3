"""The model benchmark: MAC and size counting, and a smoke run of the script on one tiny model."""

from __future__ import annotations

import argparse
import json

import pytest
import torch
from torch import nn

from colorizers import create_model, list_models, weights
from colorizers.models.base import ColorizationModel
from training.benchmark_models.cli import main as benchmark_main
from training.benchmark_models.cli import parse_photo_sizes
from training.benchmark_models.counting import count_macs, fp16_bytes, parameter_count, variant_stats
from training.benchmark_models.photo import synthetic_photo
from training.benchmark_models.timing import summarise


class TwoConvs(ColorizationModel):
    """3x3 conv 1 -> 8, BatchNorm, ReLU, 1x1 conv 8 -> 2: a net whose MACs are easy to count by hand."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.norm = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 2, 1)

    def predict_ab(self, l, *, hint_ab=None, hint_mask=None, seed=None):  # type: ignore[no-untyped-def]
        return self.conv2(torch.relu(self.norm(self.conv1(l))))


def test_count_macs_of_a_small_conv_net() -> None:
    model = TwoConvs().eval()
    # conv1: 8 outputs x 1 input x 3 x 3 per pixel; conv2: 2 x 8 x 1 x 1 (biases and BatchNorm are not MACs).
    assert count_macs(model, 32) == (8 * 1 * 9 + 2 * 8) * 32 * 32
    assert count_macs(model, 16) == (8 * 1 * 9 + 2 * 8) * 16 * 16


def test_fp16_bytes_follow_the_weights_file_rule(tmp_path) -> None:
    model = TwoConvs()
    params = 8 * 9 + 8 + 8 + 8 + 2 * 8 + 2  # conv1, norm weight and bias, conv2
    buffers = 2 * 8 * 4 + 8  # running mean and variance stay float32, the int64 batch counter
    assert parameter_count(model) == params
    assert fp16_bytes(model) == params * 2 + buffers

    tiny = create_model("zhang-eccv16", "tiny")
    path = weights.save(tiny, tmp_path)
    header = path.stat().st_size - fp16_bytes(tiny)
    assert 0 < header < 20_000  # the file is the counted tensors plus the safetensors JSON header


@pytest.mark.parametrize("spec", list_models(), ids=lambda s: s.id)
def test_counting_on_meta_matches_real_weights(spec) -> None:
    stats = variant_stats(spec, "tiny", 64)
    model = create_model(spec.id, "tiny").eval()
    assert stats["counted_on"] == "meta"
    assert stats["parameters"] == parameter_count(model)
    assert stats["fp16_bytes"] == fp16_bytes(model)
    assert stats["macs"] == count_macs(model, 64) > 0


def test_summarise_and_photo_sizes() -> None:
    stats = summarise([0.001, 0.002, 0.003, 0.004, 0.010])
    assert stats["median_ms"] == 3.0 and stats["min_ms"] == 1.0 and stats["runs"] == 5
    assert 4.0 < stats["p95_ms"] <= 10.0
    assert parse_photo_sizes("4000x3000, 1152X864") == [(4000, 3000), (1152, 864)]
    with pytest.raises(argparse.ArgumentTypeError):
        parse_photo_sizes("4000-3000")


def test_synthetic_photo_is_deterministic_and_sized() -> None:
    a, b = synthetic_photo(120, 90, seed=3), synthetic_photo(120, 90, seed=3)
    assert a.size == (120, 90) and a.mode == "RGB"
    assert a.tobytes() == b.tobytes()


def test_script_runs_on_one_tiny_model(tmp_path, capsys) -> None:
    out = tmp_path / "bench" / "models.json"
    threads = torch.get_num_threads()
    try:
        code = benchmark_main(
            [
                "--models", "coloria-cnn",
                "--variant", "tiny",
                "--size", "64",
                "--threads", "1",
                "--repeats", "2",
                "--warmup", "1",
                "--photos", "96x64,48x32",
                "--photo-repeats", "1",
                "--out", str(out),
                "--markdown",
            ]
        )  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    report = json.loads(out.read_text())
    assert report["settings"]["threads"] == 1 and report["settings"]["size"] == 64
    assert {"cpu", "torch", "python"} <= set(report["machine"])
    (model,) = report["models"]
    assert model["id"] == "coloria-cnn" and set(model["variants"]) == {"tiny", "compact", "full"}
    assert model["latency"]["runs"] == 2 and model["latency"]["median_ms"] > 0
    assert model["variants"]["full"]["macs"] > model["variants"]["compact"]["macs"] > model["variants"]["tiny"]["macs"]
    assert "macs_working_size" in model["variants"]["compact"]  # coloria works at 160, not 64
    assert [(p["width"], p["height"]) for p in report["photos"]] == [(96, 64), (48, 32)]
    for photo in report["photos"]:
        assert set(photo["stages"]) == {"decode", "to_model_input", "merge_chroma", "encode_jpeg", "encode_png"}
        assert set(photo["stages"]["to_model_input"]) == {"160"}
        assert set(photo["model_pass"]) == {"coloria-cnn"}
    tables = out.with_suffix(".md").read_text()
    assert "| `coloria-cnn` | compact |" in tables and "| `coloria-cnn` | tiny |" not in tables
    assert "chroma merge" in tables
    assert "coloria-cnn" in capsys.readouterr().out
