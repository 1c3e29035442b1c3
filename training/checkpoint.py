"""Checkpoints (everything a stopped run needs to continue exactly) and the weights a fine-tuning run starts from."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from colorizers import weights
from training import reporting
from training.ema import ModelEMA
from training.recipes.base import StepContext

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_FORMAT = 1


def contents(
    ctx: StepContext, ema: ModelEMA, *, model_id: str, variant: str, counters: Mapping[str, Any]
) -> dict[str, Any]:
    """The checkpoint: networks, optimisers, scalers, EMA, recipe state, the run's ``counters`` and random state."""
    return {
        "format": CHECKPOINT_FORMAT,
        "model_id": model_id,
        "variant": variant,
        "model_args": ctx.raw["model"].model_args,
        "nets": {name: net.state_dict() for name, net in ctx.raw.items()},
        "optimizers": {name: opt.state_dict() for name, opt in ctx.optimizers.items()},
        "scalers": {name: s.state_dict() for name, s in ctx.scalers.items()},
        "ema": ema.state_dict(),
        "state": {k: (v.detach().cpu() if isinstance(v, torch.Tensor) else v) for k, v in ctx.state.items()},
        **counters,
        "rng": {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state(ctx.device) if ctx.device.type == "cuda" else None,
            "generator": ctx.generator.get_state(),
        },
        "saved": reporting.now(),
    }


def write(path: Path, contents: Mapping[str, Any]) -> None:
    """Write through a temporary file, so a process killed while writing leaves the previous checkpoint whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(contents, tmp)
    os.replace(tmp, path)


def read(path: Path, model_id: str, variant: str, model_args: Mapping[str, Any]) -> dict[str, Any]:
    """The checkpoint at ``path``, refused unless it is of this model with these arguments."""
    if not path.exists():
        raise FileNotFoundError(f"nothing to resume: no {path.name} in {path.parent}")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if ckpt.get("model_id") != model_id or ckpt.get("model_args") != model_args:
        raise ValueError(
            f"{path} is a checkpoint of {ckpt.get('model_id')} {ckpt.get('variant')} "
            f"({ckpt.get('model_args')}), not of {model_id} {variant}"
        )
    return ckpt


def restore(ckpt: Mapping[str, Any], ctx: StepContext, ema: ModelEMA) -> None:
    """Load networks, optimisers, scalers, EMA and the recipe state of ``ckpt`` into a freshly built run."""
    for name, net in ctx.raw.items():
        net.load_state_dict(ckpt["nets"][name])
    for name, opt in ctx.optimizers.items():
        opt.load_state_dict(ckpt["optimizers"][name])
    for name, scaler in ctx.scalers.items():
        scaler.load_state_dict(ckpt["scalers"][name])
    ema.load_state_dict(ckpt["ema"])
    ema.module.to(ctx.device)
    ctx.state = {k: (v.to(ctx.device) if isinstance(v, torch.Tensor) else v) for k, v in ckpt["state"].items()}


def restore_random_state(rng: Mapping[str, Any], ctx: StepContext) -> None:
    """Continue the saved random streams (global torch, CUDA, the recipe's generator) where they were."""
    torch.set_rng_state(rng["torch"])
    ctx.generator.set_state(rng["generator"])
    if ctx.device.type == "cuda" and rng.get("cuda") is not None:
        torch.cuda.set_rng_state(rng["cuda"], ctx.device)


def start_from_weights(
    name: str, directory: Path | None, model_id: str, model: nn.Module, ema: ModelEMA
) -> dict[str, Any]:
    """Load shipped weights ``name`` into the model and its EMA; returns what they were (steps, training time).

    Critics and optimisers start anew: fine-tuning is a new run from these weights, not a continuation.
    """
    loaded, sidecar = weights.load(name, directory)
    if sidecar["architecture"] != model_id:
        raise ValueError(f"weights {name!r} are of {sidecar['architecture']}, not of {model_id}")
    weights.load_state(model, loaded.state_dict())  # strict, names what does not fit
    ema.module.load_state_dict(model.state_dict())
    prior = {
        "weights": name,
        "steps": int(sidecar.get("steps") or 0),
        "train_seconds": float(sidecar.get("train_seconds") or 0.0),
    }
    log.info("starting from weights %s (%d steps)", name, prior["steps"])
    return prior
