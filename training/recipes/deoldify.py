"""DeOldify's NoGAN: generator pretraining, critic pretraining, then a short GAN phase."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from colorizers import create_model
from colorizers.color import AB_MAX, l_to_gray_rgb_t, rgb_to_lab_t
from colorizers.models.deoldify import DeOldifyCritic, imagenet_denormalize, imagenet_normalize
from training.recipes.base import Batch, Losses, Phase, Recipe, StepContext, trainable

CRITIC_WIDTHS = {"tiny": 8, "compact": 48, "full": 256}

# The catalogue's split of the budget; the GAN phase runs at a tenth of the learning rate with Adam(0, 0.9).
NOGAN_PHASES = (
    Phase("generator", 0.75),
    Phase("critic", 0.15),
    Phase("gan", 0.10, lr_scale=0.1, betas=(0.0, 0.9)),
)


@dataclass(frozen=True)
class NoGANRecipe(Recipe):
    """DeOldify's NoGAN in three phases of the budget: generator pretraining, critic pretraining, a short GAN phase.

    * generator: L1 in the generator's ImageNet-normalised RGB plus L1 on the ab of that RGB (chroma is what
      the grey input does not give away; this project has no pretrained VGG for DeOldify's feature loss);
    * critic: binary cross-entropy on real photos (1) against the frozen generator's outputs (0), per patch;
    * GAN: the adaptive switch DeOldify uses: critic steps until the critic's loss falls below 0.65, then one
      generator step (reconstruction + ``adv_weight`` x adversarial BCE), then back to the critic. Adam betas
      (0, 0.9) and a tenth of the learning rate in this phase.
    """

    phases: tuple[Phase, ...] = NOGAN_PHASES
    critic_lr_ratio: float = 0.5
    critic_threshold: float = 0.65
    adv_weight: float = 1.5
    chroma_weight: float = 1.0

    def build(self, variant: str) -> dict[str, nn.Module]:
        return {
            "model": create_model(self.model_id, variant),
            "critic": DeOldifyCritic(nf=CRITIC_WIDTHS.get(variant, CRITIC_WIDTHS["compact"])),
        }

    def optimizers(self, nets: Mapping[str, nn.Module], lr: float) -> dict[str, torch.optim.Optimizer]:
        return {
            "model": torch.optim.Adam(trainable(nets["model"]), lr=lr, betas=(0.9, 0.99)),
            "critic": torch.optim.Adam(trainable(nets["critic"]), lr=lr * self.critic_lr_ratio, betas=(0.9, 0.99)),
        }

    def reconstruction(self, fake: torch.Tensor, real: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
        fake = fake.float()
        pixel = F.l1_loss(fake, real)
        fake_ab = rgb_to_lab_t(imagenet_denormalize(fake).clamp(0.0, 1.0))[:, 1:]  # (B, 2, H, W)
        return pixel + self.chroma_weight * F.l1_loss(fake_ab / AB_MAX, ab / AB_MAX)

    def critic_loss(self, ctx: StepContext, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        with ctx.autocast():
            logits = ctx.nets["critic"](torch.cat([real, fake.detach()]))  # (2B, patches)
        n = real.shape[0]
        target = torch.cat([torch.ones_like(logits[:n]), torch.zeros_like(logits[n:])])
        return F.binary_cross_entropy_with_logits(logits.float(), target)

    def step(self, ctx: StepContext, batch: Batch) -> Losses:
        x = imagenet_normalize(l_to_gray_rgb_t(batch["l"].float()))  # (B, 3, H, W) grey input
        real = imagenet_normalize(batch["rgb"].float())  # (B, 3, H, W)
        ab = batch["ab"].float()
        phase = ctx.phase.name
        if phase == "generator":
            with ctx.autocast():
                fake = ctx.nets["model"](x)
            loss = self.reconstruction(fake, real, ab)
            ctx.update("model", loss)
            return {"g_rec": loss.detach()}
        gen_mode = phase == "gan" and bool(ctx.state.get("gen_mode", False))
        if not gen_mode:
            generator = ctx.raw["model"]
            generator.eval()  # frozen statistics: the critic sees what the generator makes, replicas stay equal
            with torch.no_grad(), ctx.autocast():
                fake = generator(x)
            loss = self.critic_loss(ctx, real, fake)
            ctx.update("critic", loss)
            if phase == "gan" and ctx.mean_across_ranks(loss.detach()) < self.critic_threshold:
                ctx.state["gen_mode"] = True
            return {"d_bce": loss.detach()}
        with ctx.autocast():
            fake = ctx.nets["model"](x)
            logits = ctx.nets["critic"](fake)
        rec = self.reconstruction(fake, real, ab)
        adv = F.binary_cross_entropy_with_logits(logits.float(), torch.ones_like(logits, dtype=torch.float32))
        ctx.update("model", rec + self.adv_weight * adv)
        ctx.state["gen_mode"] = False
        return {"g_rec": rec.detach(), "g_adv": adv.detach()}
