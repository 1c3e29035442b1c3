"""The trainer and every recipe on tiny variants and synthetic pictures: steps, budgets, resume, EMA, export."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from colorizers import create_model, list_models, weights
from colorizers.color import rgb_to_lab_t
from training import export as export_module
from training import trainer as trainer_module
from training.__main__ import main as training_main
from training.checkpoint import CHECKPOINT_NAME
from training.data import Augment, CropDataset, ResumableSampler, SyntheticDataset, list_crops, spread
from training.distributed import parameter_digest
from training.recipes import RECIPES, get_recipe
from training.recipes.deoldify import NoGANRecipe
from training.recipes.zhang import ZhangHintsRecipe, hint_count, simulate_hints
from training.train_config import TrainConfig
from training.trainer import PROGRESS_NAME, train
from training.validation import Validator

IDS = sorted(RECIPES)
# Sides the tiny variants accept; DeOldify's critic needs 64 px.
SIZES = {"deoldify-artistic": 64, "deoldify-stable": 64}


def config(tmp_path, model: str, **overrides) -> TrainConfig:
    settings = {
        "model": model,
        "variant": "tiny",
        "steps": 2,
        "synthetic": 4,
        "image_size": SIZES.get(model, 32),
        "batch_size": 2,
        "run_dir": tmp_path / "runs",
        "out": tmp_path / "weights",
        "workers": 0,
        "val_samples": 2,
        "val_interval": 1.0,
        "progress_bar": False,
        **overrides,
    }
    return TrainConfig(**settings)


def checkpoint(tmp_path, model: str) -> dict:
    return torch.load(tmp_path / "runs" / model / CHECKPOINT_NAME, map_location="cpu", weights_only=True)


def test_every_catalogue_model_has_a_recipe():
    assert set(RECIPES) == {spec.id for spec in list_models()}
    assert get_recipe("bigcolor").ema_decay == 0.999
    with pytest.raises(KeyError, match="no training recipe"):
        get_recipe("nope")


@pytest.mark.parametrize("model_id", IDS)
def test_recipe_trains_and_exports_loadable_weights(tmp_path, model_id):
    result = train(config(tmp_path, model_id))
    assert result.status == "finished" and result.steps == 2
    model, meta = weights.load(model_id, tmp_path / "weights")
    assert meta["architecture"] == model_id and meta["variant"] == "tiny" and meta["steps"] == 2
    assert meta["recipe"].startswith(model_id) and meta["hardware"] and meta["train_seconds"] >= 0
    assert meta["data_manifest_sha256"] is None  # synthetic pictures
    assert meta["dtype"] in ("float16", "float32")
    assert math.isfinite(meta["metrics"]["val_delta_e00"]) and meta["metrics"]["val_delta_e00"] >= 0
    size = SIZES.get(model_id, 32)
    with torch.inference_mode():
        ab = model.predict_ab(torch.full((1, 1, size, size), 50.0))
    assert ab.shape == (1, 2, size, size) and torch.isfinite(ab).all()
    progress = json.loads((tmp_path / "runs" / model_id / PROGRESS_NAME).read_text())
    assert progress["status"] == "finished" and progress["step"] == 2 and progress["total_steps"] == 2
    assert progress["losses"] and progress["val"]["val_delta_e00"] == pytest.approx(result.metrics["val_delta_e00"])
    assert progress["weights"].endswith(f"{model_id}.safetensors")


def test_ema_differs_from_raw_weights_and_from_the_start(tmp_path):
    train(config(tmp_path, "wallner-beta", steps=3))
    ckpt = checkpoint(tmp_path, "wallner-beta")
    raw, ema = ckpt["nets"]["model"], ckpt["ema"]["module"]
    torch.manual_seed(0)
    initial = get_recipe("wallner-beta").build("tiny")["model"].state_dict()
    assert ckpt["ema"]["updates"] == 3
    assert any(not torch.equal(raw[k], ema[k]) for k in raw)
    assert any(not torch.equal(initial[k], ema[k]) for k in raw)


def test_step_budget_stops_exactly(tmp_path):
    result = train(config(tmp_path, "coloria-cnn", steps=5))
    assert result.steps == 5 and checkpoint(tmp_path, "coloria-cnn")["step"] == 5


def test_time_budget_stops_on_time(tmp_path):
    result = train(config(tmp_path, "wallner-alpha", steps=None, minutes=0.01))
    assert result.status == "finished" and result.steps >= 1
    assert 0.6 <= result.seconds < 20.0
    progress = json.loads((tmp_path / "runs" / "wallner-alpha" / PROGRESS_NAME).read_text())
    assert progress["fraction"] == 1.0 and progress["budget_seconds"] == pytest.approx(0.6)


def _stop_after(monkeypatch, recipe_class, steps: int) -> None:
    """Make the trainer act as on SIGTERM once ``steps`` steps have run."""
    original = recipe_class.step
    trainers: list = []
    monkeypatch.setattr(trainer_module.Trainer, "_setup", _recording(trainer_module.Trainer._setup, trainers))

    def step(self, ctx, batch):
        losses = original(self, ctx, batch)
        if ctx.step + 1 >= steps:
            trainers[-1]._stop = True
        return losses

    monkeypatch.setattr(recipe_class, "step", step)


def _recording(method, seen: list):
    def wrapper(self):
        seen.append(self)
        return method(self)

    return wrapper


def test_resume_continues_where_a_stopped_run_left_off(tmp_path, monkeypatch):
    model = "zhang-siggraph17"  # its step draws random hints, so the RNG state must come back too
    whole = train(config(tmp_path / "whole", model, steps=4))
    with monkeypatch.context() as patch:
        _stop_after(patch, ZhangHintsRecipe, 2)
        stopped = train(config(tmp_path / "split", model, steps=4))
    assert stopped.status == "stopped" and stopped.weights is None and stopped.steps == 2
    assert checkpoint(tmp_path / "split", model)["step"] == 2
    resumed = train(config(tmp_path / "split", model, steps=4, resume=True))
    assert resumed.status == "finished" and resumed.steps == 4
    a, b = checkpoint(tmp_path / "whole", model), checkpoint(tmp_path / "split", model)
    for part in ("nets", "ema"):
        left = a[part]["model"] if part == "nets" else a[part]["module"]
        right = b[part]["model"] if part == "nets" else b[part]["module"]
        assert all(torch.equal(left[k], right[k]) for k in left), part
    assert whole.metrics["val_delta_e00"] == pytest.approx(resumed.metrics["val_delta_e00"])


def test_resume_refuses_another_model_shape(tmp_path):
    train(config(tmp_path, "wallner-beta"))
    with pytest.raises(ValueError, match="checkpoint of wallner-beta tiny"):
        train(config(tmp_path, "wallner-beta", variant="compact", resume=True))
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        train(config(tmp_path, "coloria-cnn", resume=True))


def test_init_fine_tunes_from_weights_and_adds_up_steps_and_time(tmp_path):
    train(config(tmp_path, "wallner-beta", steps=3))
    start, _ = weights.load("wallner-beta", tmp_path / "weights")
    tuned = train(config(tmp_path, "wallner-beta", steps=2, init="wallner-beta"))
    assert tuned.status == "finished" and tuned.steps == 2
    ckpt = checkpoint(tmp_path, "wallner-beta")
    assert ckpt["ema"]["updates"] == 2 and ckpt["prior"]["steps"] == 3
    model, meta = weights.load("wallner-beta", tmp_path / "weights")
    assert meta["steps"] == 5
    assert meta["train_seconds"] == round(ckpt["prior"]["train_seconds"] + tuned.seconds, 1)
    prior = {"weights": "wallner-beta", "steps": 3, "train_seconds": ckpt["prior"]["train_seconds"]}
    assert meta["training"]["started_from"] == prior
    assert meta["working_size"] == 32  # the size it was trained at
    before = start.state_dict()
    assert any(not torch.equal(v, before[k]) for k, v in model.state_dict().items() if v.is_floating_point())


def test_init_refuses_other_models_weights_and_resume(tmp_path):
    train(config(tmp_path, "wallner-beta"))
    with pytest.raises(ValueError, match="are of wallner-beta, not of wallner-full"):
        train(config(tmp_path, "wallner-full", init="wallner-beta"))
    with pytest.raises(ValueError, match="give one of them"):
        config(tmp_path, "wallner-beta", init="wallner-beta", resume=True)


def test_nogan_goes_through_its_three_phases_and_switches(tmp_path, monkeypatch):
    recipe = dataclasses.replace(get_recipe("deoldify-stable"), critic_threshold=100.0)  # every critic loss passes
    monkeypatch.setattr(trainer_module, "get_recipe", lambda _: recipe)
    seen: list[tuple[str, tuple[str, ...]]] = []
    original = NoGANRecipe.step

    def step(self, ctx, batch):
        losses = original(self, ctx, batch)
        seen.append((ctx.phase.name, tuple(sorted(losses))))
        return losses

    monkeypatch.setattr(NoGANRecipe, "step", step)
    train(config(tmp_path, "deoldify-stable", steps=20))
    phases = [phase for phase, _ in seen]
    assert phases == ["generator"] * 15 + ["critic"] * 3 + ["gan"] * 2
    assert seen[0][1] == ("g_rec",) and seen[15][1] == ("d_bce",)
    assert seen[18][1] == ("d_bce",) and seen[19][1] == ("g_adv", "g_rec")  # critic below threshold -> generator


def test_fp16_export_falls_back_to_fp32(tmp_path, monkeypatch):
    monkeypatch.setattr(export_module, "FP16_TOLERANCE", -1.0)
    train(config(tmp_path, "wallner-beta"))
    meta = weights.read_sidecar("wallner-beta", tmp_path / "weights")
    assert meta["dtype"] == "float32" and "val_delta_e00_fp16" in meta["metrics"]


def test_cli_trains_and_prints_the_result(tmp_path, capsys):
    code = training_main(
        [
            "train", "--model", "wallner-full", "--variant", "tiny", "--steps", "2", "--synthetic", "4",
            "--image-size", "32", "--batch-size", "2", "--run-dir", str(tmp_path / "runs"),
            "--out", str(tmp_path / "weights"), "--workers", "0", "--val-samples", "2", "--no-progress",
        ]
    )
    assert code == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["status"] == "finished" and line["steps"] == 2 and line["weights"].endswith("wallner-full.safetensors")
    assert (tmp_path / "runs" / "wallner-full" / "tensorboard").is_dir()


def test_schedule_and_phases():
    recipe = get_recipe("deoldify-artistic")
    assert recipe.phase_at(0.0)[0].name == "generator"
    assert recipe.phase_at(0.8)[0].name == "critic"
    phase, within = recipe.phase_at(0.95)
    assert phase.name == "gan" and within == pytest.approx(0.5) and phase.betas == (0.0, 0.9)
    beta = get_recipe("wallner-beta")
    assert beta.lr_factor(0.0) < 0.05 and beta.lr_factor(0.3) > beta.lr_factor(0.9) >= beta.final_lr
    bigcolor = get_recipe("bigcolor")  # a constant learning rate: reconstruction, then the GAN it exports
    assert bigcolor.phase_at(0.1)[0].name == "reconstruction" and bigcolor.lr_factor(0.1) == 1.0
    assert bigcolor.phase_at(0.7)[0].name == "gan"
    assert bigcolor.exports(bigcolor.phase_at(0.7)[0]) and not bigcolor.exports(bigcolor.phase_at(0.1)[0])
    assert beta.exports(beta.phase_at(0.5)[0])  # without export_phases, every phase


def test_only_validations_in_an_export_phase_can_be_exported():
    rgb = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    lab = rgb_to_lab_t(rgb)
    validator = Validator({"rgb": rgb, "l": lab[:, :1], "ab": lab[:, 1:]})
    model = create_model("wallner-beta", "tiny").eval()
    validator.validate(model, torch.device("cpu"), 1, 0.0, eligible=False)  # e.g. a GAN's pretraining phase
    assert validator.best is None and len(validator.history) == 1
    validator.validate(model, torch.device("cpu"), 2, 0.0)
    assert validator.best is not None and validator.best[0]["step"] == 2


def test_hint_count_is_geometric_with_p_one_eighth():
    gen = torch.Generator().manual_seed(0)
    counts = torch.tensor([hint_count(gen) for _ in range(4000)], dtype=torch.float32)
    assert counts.mean().item() == pytest.approx(7.0, rel=0.1)
    assert (counts == 0).float().mean().item() == pytest.approx(1 / 8, abs=0.02)


def test_simulated_hints_reveal_patch_means():
    ab = torch.zeros(64, 2, 32, 32)
    ab[:, 0], ab[:, 1] = 30.0, -20.0
    hint_ab, mask = simulate_hints(ab, torch.Generator().manual_seed(1))
    assert hint_ab.shape == (64, 2, 32, 32) and mask.shape == (64, 1, 32, 32)
    assert set(mask.unique().tolist()) <= {0.0, 1.0} and mask.sum() > 0
    on = mask[:, 0] > 0
    assert torch.all(hint_ab[:, 0][on] == 30.0) and torch.all(hint_ab[:, 1][on] == -20.0)
    assert torch.all(hint_ab[:, 0][~on] == 0.0)


def test_augmentation_is_per_sample_reproducible():
    data = SyntheticDataset(3, 32, augment=Augment(crop=24), seed=5)
    first = data[1]
    assert first["rgb"].shape == (3, 24, 24) and first["l"].shape == (1, 24, 24) and first["ab"].shape == (2, 24, 24)
    assert torch.equal(first["ab"], data[1]["ab"])
    data.set_epoch(1)
    assert not torch.equal(first["ab"], data[1]["ab"])
    assert 0.0 <= float(first["l"].min()) and float(first["l"].max()) <= 100.0


def test_augmentation_without_ranges_keeps_or_mirrors_the_picture():
    rgb = torch.rand(3, 16, 16)
    still = Augment(flip=False, rotation_deg=0.0, zoom=0.0, shear=0.0)
    torch.testing.assert_close(still(rgb, torch.Generator().manual_seed(0)), rgb, atol=1e-5, rtol=0)
    mirror = Augment(rotation_deg=0.0, zoom=0.0, shear=0.0)
    outs = [mirror(rgb, torch.Generator().manual_seed(s)) for s in range(8)]
    for out in outs:
        assert torch.allclose(out, rgb, atol=1e-5) or torch.allclose(out, rgb.flip(-1), atol=1e-5)
    assert any(torch.allclose(out, rgb.flip(-1), atol=1e-5) for out in outs)


def test_crops_are_listed_from_the_manifest_or_the_folders(tmp_path):
    from PIL import Image

    for split, names in (("train", ["b.png", "a.png"]), ("val", ["c.jpg"])):
        (tmp_path / "crops" / split).mkdir(parents=True)
        for name in names:
            Image.new("RGB", (8, 8), (200, 30, 30)).save(tmp_path / "crops" / split / name)
    assert [p.name for p in list_crops(tmp_path, "train")] == ["a.png", "b.png"]
    assert [p.name for p in list_crops(tmp_path, "val")] == ["c.jpg"]
    manifest = {"crops": [{"file": "crops/train/b.png", "split": "train"}], "sha256": "x"}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    assert [p.name for p in list_crops(tmp_path, "train")] == ["b.png"]
    sample = CropDataset(list_crops(tmp_path, "train"), 8)[0]
    assert sample["ab"][0].mean() > 40  # red
    assert spread(list(range(10)), 3) == [0, 3, 6]


def test_sampler_resumes_part_way_through_an_epoch():
    data = SyntheticDataset(10, 8)
    sampler = ResumableSampler(data, num_replicas=1, rank=0, seed=0)
    sampler.set_epoch(2)
    full = list(sampler)
    sampler.set_start(4)
    assert list(sampler) == full[4:]
    assert list(sampler) == full  # the offset applies once


def test_parameter_digest_tracks_values():
    net = torch.nn.Linear(2, 2)
    before = parameter_digest({"model": net})
    with torch.no_grad():
        net.weight.add_(1.0)
    assert parameter_digest({"model": net}) != before


@pytest.fixture
def crop_folders(tmp_path):
    from PIL import Image

    rng = torch.Generator().manual_seed(0)
    for split, count in (("train", 4), ("unseen", 2)):
        folder = tmp_path / "data" / "crops" / split
        folder.mkdir(parents=True)
        for i in range(count):
            blocks = torch.rand(4, 4, 3, generator=rng).repeat_interleave(16, 0).repeat_interleave(16, 1)
            Image.fromarray((blocks * 255).to(torch.uint8).numpy()).save(folder / f"{i}.png")
    return tmp_path / "data"


@pytest.mark.parametrize("model_id", [s.id for s in list_models(served_only=True) if s.id in RECIPES])
def test_compact_model_trains_on_cached_encoder_features(tmp_path, crop_folders, model_id):
    cfg = config(tmp_path, model_id, variant="compact", synthetic=None, data_dir=crop_folders, image_size=64, crop=0)
    result = train(cfg)
    assert result.status == "finished" and "val_delta_e00_confident" in result.metrics
    assert list((tmp_path / "runs" / "features").glob("efficientnet-lite*-64px-*.pt"))  # computed once, kept
    meta = json.loads((tmp_path / "weights" / f"{model_id}.json").read_text())
    assert meta["backbone"]["name"].startswith("efficientnet-lite") and meta["training"]["val_split"] == "unseen"
    assert meta["training"]["best_step"] in (1, 2)
