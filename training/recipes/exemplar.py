"""Exemplar colourisation (He et al. 2018): colours from a reference photo; only the confidence gate learns."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from colorizers import create_model
from training.recipes.base import Batch, Losses, Recipe, StepContext


def other_view(lab: torch.Tensor, generator: torch.Generator, min_share: float = 0.6) -> torch.Tensor:
    """Another view of each picture: mirrored, a random crop of ``min_share``..0.9 of the side, resized back."""
    b, _, h, w = lab.shape
    views = []
    for i in range(b):
        share = min_share + (0.9 - min_share) * float(torch.rand((), generator=generator))
        ch, cw = max(8, int(h * share)), max(8, int(w * share))
        top = int(torch.randint(0, h - ch + 1, (), generator=generator))
        left = int(torch.randint(0, w - cw + 1, (), generator=generator))
        crop = lab[i : i + 1, :, top : top + ch, left : left + cw].flip(-1)
        views.append(F.interpolate(crop, size=(h, w), mode="bilinear", align_corners=False))
    return torch.cat(views)  # (B, 3, H, W)


@dataclass(frozen=True)
class ExemplarRecipe(Recipe):
    """L1 on ab between the exemplar's colours and the truth, half the batch with a reference of the same photo,
    half with another photo's; only the gate (threshold, slope, temperature) learns."""

    def build(self, variant: str) -> dict[str, nn.Module]:
        model = create_model(self.model_id, variant)
        if model.fallback is not None:
            model.fallback.requires_grad_(False)  # the fallback head is trained as its own model
        return {"model": model}

    def step(self, ctx: StepContext, batch: Batch) -> Losses:
        l, ab = batch["l"].float(), batch["ab"].float()  # (B, 1, H, W), (B, 2, H, W)
        lab = torch.cat([l, ab], dim=1)
        same = other_view(lab, ctx.generator).to(l.device)
        unrelated = same.roll(1, dims=0) if l.shape[0] > 1 else torch.zeros_like(same)
        model = ctx.nets["model"]
        pred_same = model(l, same)
        pred_other = model(l, unrelated)
        loss_same = F.l1_loss(pred_same.float(), ab)
        loss_other = F.l1_loss(pred_other.float(), ab)
        loss = loss_same + loss_other
        ctx.update("model", loss)
        return {"l1_same": loss_same.detach(), "l1_unrelated": loss_other.detach()}
