"""The export at the end of a run: the best EMA weights and their sidecar, in float16 when that keeps the score."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from colorizers import weights
from training.distributed import hardware_description
from training.recipes.base import Recipe
from training.run_data import RunData
from training.train_config import RunSettings, TrainConfig
from training.validation import Validator, evaluate

log = logging.getLogger(__name__)

#: Largest change of the validation mean CIEDE2000 accepted from storing the weights in float16.
FP16_TOLERANCE = 0.1


def export_run(
    model: nn.Module,
    cfg: TrainConfig,
    recipe: Recipe,
    settings: RunSettings,
    data: RunData,
    validation: Validator,
    *,
    device: torch.device,
    world: int,
    step: int,
    elapsed: float,
    budget: Mapping[str, Any],
    prior: Mapping[str, Any] | None,
) -> Path:
    """Save the EMA ``model`` (its best validated weights) as ``cfg.model`` in ``cfg.out``; returns the path.

    ``prior`` describes the weights a fine-tuning run started from: the sidecar's steps and training time
    add theirs to this run's.
    """
    if validation.best is not None:
        model.load_state_dict(validation.best[1])
    metrics = dict(validation.final_metrics())
    half = recipe.half if cfg.half is None else cfg.half
    if half:
        half = float16_keeps_score(model, data.val, device, metrics)
    training = {
        "recipe": recipe.describe(),
        "batch_size": settings.batch_size,
        "world_size": world,
        "lr": settings.lr,
        "image_size": settings.image_size,
        "crop": settings.crop,
        "ema_decay": settings.ema_decay,
        "mixed_precision": settings.amp,
        "seed": cfg.seed,
        "epochs": round(step * settings.batch_size * world / max(1, len(data.train_set)), 3),
        "train_pictures": data.train_pictures,
        "val_pictures": int(data.val["l"].shape[0]),
        "val_split": data.val_split,
        "data": "synthetic" if cfg.synthetic else str(cfg.data_dir),
        "budget": budget,
        "started_from": prior,
        "best_step": validation.best[0]["step"] if validation.best else None,
    }
    prior_steps = prior["steps"] if prior else 0
    prior_seconds = prior["train_seconds"] if prior else 0.0
    return weights.save(
        model,
        cfg.out,
        name=cfg.model,
        half=half,
        variant=cfg.variant,
        recipe=f"{cfg.model}: {recipe.summary}",
        steps=prior_steps + step,
        train_seconds=round(prior_seconds + elapsed, 1),
        hardware=hardware_description(device, world),
        working_size=settings.image_size,
        data_manifest_sha256=data.manifest_sha256,
        metrics={k: round(v, 4) for k, v in metrics.items()},
        training=training,
    )


def float16_keeps_score(
    model: nn.Module, val: Mapping[str, torch.Tensor], device: torch.device, metrics: dict[str, float]
) -> bool:
    """Whether float16 weights score within ``FP16_TOLERANCE`` of ``metrics``; adds "val_delta_e00_fp16" to it."""
    with tempfile.TemporaryDirectory() as tmp:
        weights.save(model, tmp, name="check", half=True)
        loaded, _ = weights.load("check", tmp)
        fp16, _ = evaluate(loaded.to(device), val, device)
    change = abs(fp16["val_delta_e00"] - metrics["val_delta_e00"])
    metrics["val_delta_e00_fp16"] = fp16["val_delta_e00"]
    if change > FP16_TOLERANCE:
        log.warning("float16 weights change the validation CIEDE2000 by %.3f: storing float32", change)
        return False
    return True
