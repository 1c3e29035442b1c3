"""Evaluation end to end on three synthetic photos with two tiny models: report, baseline, pictures, docs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from colorizers import weights
from colorizers.registry import create_model, list_models
from tests.helpers import make_photo
from training.__main__ import main as training_main
from training.evaluate.inputs import EvaluationError, load_photos, select_models
from training.evaluate.report import _finite
from training.evaluate.report import run as run_evaluation
from training.evaluate.scoring import BASELINE, score

MODELS = ("coloria-cnn", "zhang-eccv16")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("evaluation")
    images, weights_dir, out = root / "photos", root / "weights", root / "report"
    images.mkdir()
    for i in range(3):
        make_photo(48 + 16 * i, 40, seed=i).save(images / f"photo{i}.png")
    (images / "notes.txt").write_text("not a photo")
    for model_id in MODELS:
        weights.save(
            create_model(model_id, "tiny"),
            weights_dir,
            variant="tiny",
            recipe="unit-test",
            steps=5,
            train_seconds=1.5,
            hardware="test machine",
        )
    docs = root / "docs" / "evaluation.md"
    argv = ["evaluate", "--images", str(images), "--models", "all", "--out", str(out)]
    argv += ["--weights-dir", str(weights_dir), "--docs", str(docs)]
    assert training_main(argv) == 0
    return {"root": root, "images": images, "weights": weights_dir, "out": out, "docs": docs}


@pytest.fixture(scope="module")
def report(run: dict[str, Path]) -> dict:
    return json.loads((run["out"] / "report.json").read_text())


def test_report_has_every_model_and_the_baseline(report: dict) -> None:
    assert set(report["models"]) == {*MODELS, BASELINE}
    assert report["images"]["count"] == 3
    assert report["images"]["names"] == ["photo0.png", "photo1.png", "photo2.png"]
    automatic = {s.id for s in list_models(served_only=True) if not s.needs_reference}
    reasons = {s["model"]: s["reason"] for s in report["skipped"]}
    assert set(reasons) == (automatic - set(MODELS)) | {"exemplar"}
    assert all("--allow-untrained" in reason for name, reason in reasons.items() if name != "exemplar")
    assert "needs a reference photo" in reasons["exemplar"]  # scored with references in docs/exemplar.md
    assert report["command"].startswith("python -m training evaluate --images ")
    assert report["settings"]["device"] == "cpu"


def test_model_entries(report: dict) -> None:
    for model_id in MODELS:
        entry = report["models"][model_id]
        assert entry["baseline"] is False and entry["architecture"] == model_id
        mean = entry["mean"]
        for key in ("delta_e00", "psnr", "colourfulness", "colourfulness_truth", "delta_cf", "cf_ratio", "latency_ms"):
            assert isinstance(mean[key], float) and math.isfinite(mean[key]), key
        assert mean["delta_e00"] > 0 and mean["latency_ms"] > 0 and mean["images"] == 3
        rows = entry["per_image"]
        assert [r["image"] for r in rows] == report["images"]["names"]
        assert mean["delta_e00"] == pytest.approx(np.mean([r["delta_e00"] for r in rows]))
        assert all(r["delta_cf"] == pytest.approx(r["colourfulness"] - r["colourfulness_truth"]) for r in rows)
        prov = entry["provenance"]
        assert prov["provenance"] == "trained" and prov["steps"] == 5 and prov["recipe"] == "unit-test"
        assert prov["hardware"] == "test machine" and prov["train_seconds"] == 1.5 and prov["variant"] == "tiny"


def test_baseline_row(report: dict) -> None:
    base = report["models"][BASELINE]
    assert base["baseline"] is True
    mean = base["mean"]
    assert mean["colourfulness"] == pytest.approx(0.0, abs=1e-9)
    assert mean["cf_ratio"] == pytest.approx(0.0, abs=1e-9)
    assert mean["delta_cf"] == pytest.approx(-mean["colourfulness_truth"])
    assert mean["latency_ms"] is None
    assert mean["delta_e00"] > 5  # the synthetic photos are very colourful
    assert report["acceptance"]["baseline_delta_e00"] == mean["delta_e00"]
    assert report["acceptance"]["delta_e00_bar"] == pytest.approx(0.9 * mean["delta_e00"])
    assert set(report["acceptance"]["models"]) == set(MODELS)


def test_pictures_are_valid_pngs(run: dict[str, Path]) -> None:
    for name in ("grid.png", "delta_e00.png"):
        path = run["out"] / name
        assert path.read_bytes()[:8] == PNG_SIGNATURE
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            assert image.format == "PNG" and image.width >= 400 and image.height >= 150


def test_markdown_table_is_sorted_and_reproducible(run: dict[str, Path], report: dict) -> None:
    text = (run["out"] / "report.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ") and line.split("|")[1].strip().isdigit()]
    order = [line.split("|")[2].strip().strip("`*") for line in rows]
    expected = sorted(report["models"], key=lambda n: report["models"][n]["mean"]["delta_e00"])
    assert order == expected
    assert report["command"] in text
    assert "grid.png" in text and "delta_e00.png" in text


def test_docs_page(run: dict[str, Path]) -> None:
    text = run["docs"].read_text()
    for fact in ("7.46", "7.87", "9.42", "12.49", "100,000 ImageNet", "## Acceptance", "python -m training evaluate"):
        assert fact in text
    for picture in ("img/evaluation-grid.png", "img/evaluation-delta-e00.png"):
        assert f"]({picture})" in text
        assert (run["docs"].parent / picture).read_bytes()[:8] == PNG_SIGNATURE


def test_all_means_models_with_weights_plus_imported(tmp_path: Path) -> None:
    weights.save(create_model("coloria-cnn", "tiny"), tmp_path)
    weights.save(create_model("zhang-eccv16", "tiny"), tmp_path, name="zhang-eccv16-x", provenance="imported")
    weights.save(create_model("wallner-alpha", "tiny"), tmp_path)  # a recipe, not a served model
    chosen, skipped = select_models("all", tmp_path)
    assert chosen == ["coloria-cnn", "zhang-eccv16-x"]
    assert "coloria-cnn" not in {s["model"] for s in skipped} and "zhang-eccv16" in {s["model"] for s in skipped}
    chosen, skipped = select_models("all", tmp_path, allow_untrained=True)
    assert [s["model"] for s in skipped] == ["exemplar"] and {"coloria-cnn", "zhang-eccv16", "zhang-eccv16-x"} <= set(
        chosen
    )
    assert select_models("zhang-eccv16-x, coloria-cnn", tmp_path)[0] == ["zhang-eccv16-x", "coloria-cnn"]


def test_unknown_model_and_nothing_to_evaluate(tmp_path: Path, run: dict[str, Path]) -> None:
    with pytest.raises(EvaluationError, match="unknown model"):
        select_models("no-such-model", tmp_path)
    with pytest.raises(EvaluationError, match="no model to evaluate"):
        run_evaluation(run["images"], tmp_path / "out", "coloria-cnn", weights_dir=tmp_path / "empty")
    with pytest.raises(EvaluationError, match="no photos"):
        load_photos(tmp_path)


def test_score_of_a_perfect_output() -> None:
    truth = np.asarray(make_photo(32, 24))
    scores = score(truth, truth.copy())
    assert scores["delta_e00"] == 0.0 and scores["psnr"] == math.inf and scores["cf_ratio"] == pytest.approx(1.0)
    assert _finite(scores)["psnr"] is None  # JSON has no infinity
