"""Wallner's tutorial models: regression of ab / 128 through tanh."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from colorizers.models.wallner import AB_SCALE
from training.recipes.base import Batch, Losses, Recipe, StepContext, trainable


@dataclass(frozen=True)
class WallnerRecipe(Recipe):
    """MSE between the tanh output and ab / 128 (the tutorial's loss); RMSprop (the tutorial's) or Adam."""

    optimizer: str = "adam"

    def optimizers(self, nets: Mapping[str, nn.Module], lr: float) -> dict[str, torch.optim.Optimizer]:
        params = trainable(nets["model"])
        if self.optimizer == "rmsprop":
            return {"model": torch.optim.RMSprop(params, lr=lr)}
        return {"model": torch.optim.Adam(params, lr=lr)}

    def step(self, ctx: StepContext, batch: Batch) -> Losses:
        with ctx.autocast():
            pred = ctx.nets["model"](batch["l"])  # (B, 2, H, W), ab / 128
        loss = F.mse_loss(pred.float(), batch["ab"] / AB_SCALE)
        ctx.update("model", loss)
        return {"mse": loss.detach()}
