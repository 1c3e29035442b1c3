"""The student project's CNN: mean absolute error on the RGB it outputs."""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F

from training.recipes.base import Batch, Losses, Recipe, StepContext


@dataclass(frozen=True)
class ColoriaRecipe(Recipe):
    """Mean absolute error between the sigmoid RGB output and the photo; Adam 1e-3 (the student project's)."""

    def step(self, ctx: StepContext, batch: Batch) -> Losses:
        with ctx.autocast():
            rgb = ctx.nets["model"](batch["l"])  # (B, 3, H, W) in [0, 1]
        loss = F.l1_loss(rgb.float(), batch["rgb"].float())
        ctx.update("model", loss)
        return {"mae": loss.detach()}
