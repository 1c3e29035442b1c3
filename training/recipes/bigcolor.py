"""BigColor: reconstruction first, then the hinge GAN with a projection-style discriminator."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from colorizers import create_model
from colorizers.color import AB_MAX, L_CENTER, rgb_to_lab_t
from colorizers.models.bigcolor import BigColorDiscriminator
from training.recipes.base import Batch, Losses, Phase, Recipe, StepContext, trainable

DISCRIMINATOR_WIDTHS = {"tiny": (8, 8, 16, 16), "compact": (32, 64, 128, 128), "full": (64, 128, 256, 512)}
# The generator learns the photos' colours before the discriminator joins (a reconstruction step costs a fraction
# of a GAN step, and it overfits a few hundred photos within minutes); the weights shipped are the GAN phase's.
BIGCOLOR_PHASES = (Phase("reconstruction", 0.15, betas=(0.9, 0.999)), Phase("gan", 0.85))


@dataclass(frozen=True)
class BigColorRecipe(Recipe):
    """Reconstruction L1 on RGB and on ab, plus the hinge adversarial loss of a projection-style discriminator.

    Two phases: reconstruction alone (the generator with its noise z, no discriminator; Adam(0.9, 0.999)), then
    the GAN, whose best validated weights are exported. The discriminator sees the colour picture together with
    its lightness (4 channels), so it judges whether the colours fit that grey picture. Each GAN step: one
    discriminator step (hinge), then one generator step on the same noise z ~ N(0, 0.8^2). Adam(0, 0.999),
    learning rates 1e-4 (generator) and 3e-5 (discriminator), EMA of the generator with decay 0.999, constant
    learning rate.

    The L1 on ab (``chroma_weight``) holds the colours to the truth: the RGB term spends most of its pull on
    lightness, which serving replaces with the photo's own, and with it alone the adversarial term made the
    generator colourful but wrong on unfamiliar photos (worse than grey at any chroma that was still colourful).
    """

    phases: tuple[Phase, ...] = BIGCOLOR_PHASES
    export_phases: tuple[str, ...] | None = ("gan",)
    d_lr_ratio: float = 0.3
    adv_weight: float = 0.05
    chroma_weight: float = 1.0
    betas: tuple[float, float] = (0.0, 0.999)

    def build(self, variant: str) -> dict[str, nn.Module]:
        widths = DISCRIMINATOR_WIDTHS.get(variant, DISCRIMINATOR_WIDTHS["compact"])
        return {"model": create_model(self.model_id, variant), "critic": BigColorDiscriminator(widths, in_channels=4)}

    def optimizers(self, nets: Mapping[str, nn.Module], lr: float) -> dict[str, torch.optim.Optimizer]:
        return {
            "model": torch.optim.Adam(trainable(nets["model"]), lr=lr, betas=self.betas),
            "critic": torch.optim.Adam(trainable(nets["critic"]), lr=lr * self.d_lr_ratio, betas=self.betas),
        }

    def reconstruction(self, fake: torch.Tensor, real: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
        fake_ab = rgb_to_lab_t(((fake.float() + 1) / 2).clamp(0.0, 1.0))[:, 1:]  # (B, 2, H, W)
        return F.l1_loss(fake.float(), real) + self.chroma_weight * F.l1_loss(fake_ab / AB_MAX, ab / AB_MAX)

    def step(self, ctx: StepContext, batch: Batch) -> Losses:
        l = batch["l"].float()
        real = batch["rgb"].float() * 2 - 1  # (B, 3, H, W) in [-1, 1], the generator's range
        generator = ctx.raw["model"]
        z = torch.randn(l.shape[0], generator.z_dim, generator=ctx.generator) * generator.z_std  # (B, z_dim)
        with ctx.autocast():
            fake = ctx.nets["model"](l, z.to(l.device))  # (B, 3, H, W) in [-1, 1]
        if ctx.phase.name == "reconstruction":
            rec = self.reconstruction(fake, real, batch["ab"])
            ctx.update("model", rec)
            return {"g_rec": rec.detach()}
        grey = l / L_CENTER - 1  # (B, 1, H, W) in [-1, 1]: the discriminator judges colours against it
        with ctx.autocast():
            pair = torch.cat([torch.cat([real, grey], 1), torch.cat([fake.detach(), grey], 1)])  # (2B, 4, H, W)
            scores = ctx.nets["critic"](pair)  # (2B,)
        n = l.shape[0]
        d_loss = F.relu(1 - scores[:n].float()).mean() + F.relu(1 + scores[n:].float()).mean()
        ctx.update("critic", d_loss)
        with ctx.autocast():
            g_score = ctx.nets["critic"](torch.cat([fake, grey], 1))  # (B,)
        rec = self.reconstruction(fake, real, batch["ab"])
        adv = -g_score.float().mean()
        ctx.update("model", rec + self.adv_weight * adv)
        return {"g_rec": rec.detach(), "g_adv": adv.detach(), "d_hinge": d_loss.detach()}
