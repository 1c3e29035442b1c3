"""Zhang et al.: ECCV 2016 (classification with rebalancing) and SIGGRAPH 2017 (regression with simulated hints)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from colorizers import ab_gamut
from colorizers.color import AB_MAX
from training.recipes.base import Batch, Losses, Recipe, StepContext, trainable

HINT_GEOMETRIC_P = 1.0 / 8.0
HINT_MAX_PATCH = 9


@dataclass(frozen=True)
class ZhangClassificationRecipe(Recipe):
    """Multinomial cross-entropy over the 313 ab bins with soft-encoded targets and class rebalancing.

    The targets are the ground-truth ab averaged to the logits' 1/4 resolution and soft-encoded onto the 5
    nearest bins (Gaussian, sigma 5). Each pixel is weighted by w(q*) = ((1 - 0.5) p~ + 0.5 / 313)^-1 (normalised
    so E_p~[w] = 1) for its most likely bin q*, where p~ is the ab prior of the training pictures smoothed by a
    Gaussian (sigma 5), as in the paper. Adam with beta2 0.99 and weight decay 1e-3 as the paper; a larger
    learning rate than its 3e-5 for short budgets.
    """

    def optimizers(self, nets: Mapping[str, nn.Module], lr: float) -> dict[str, torch.optim.Optimizer]:
        return {"model": torch.optim.AdamW(trainable(nets["model"]), lr=lr, betas=(0.9, 0.99), weight_decay=1e-3)}

    def prepare(self, ctx: StepContext, batches: Iterable[Batch]) -> None:
        if "rebalance_weights" in ctx.state:
            return
        centres = ab_gamut.bin_centres(ctx.device)
        counts = torch.zeros(ab_gamut.NUM_BINS, device=ctx.device)
        pictures = 0
        for batch in batches:
            ab = F.avg_pool2d(batch["ab"].to(ctx.device).float(), 4)  # (B, 2, H/4, W/4), the loss's resolution
            counts += ab_gamut.bin_counts(ab, centres)
            pictures += ab.shape[0]
        prior = counts / counts.sum().clamp_min(1.0)
        ctx.state["ab_prior"] = prior
        ctx.state["rebalance_weights"] = ab_gamut.rebalancing_weights(prior, centres)
        ctx.state["prior_pictures"] = torch.tensor(pictures)
        log_rebalancing = getattr(ctx.raw["model"], "log_rebalancing", None)
        if log_rebalancing is not None:  # the model keeps them, so that decoding can undo a share of their push
            log_rebalancing.copy_(ctx.state["rebalance_weights"].log())

    def step(self, ctx: StepContext, batch: Batch) -> Losses:
        with ctx.autocast():
            logits = ctx.nets["model"](batch["l"])  # (B, 313, H/4, W/4)
        with torch.no_grad():
            ab = F.adaptive_avg_pool2d(batch["ab"].float(), logits.shape[-2:])  # (B, 2, H/4, W/4)
            target = ab_gamut.soft_encode(ab)  # (B, 313, H/4, W/4)
        loss = ab_gamut.rebalanced_cross_entropy(logits, target, ctx.state["rebalance_weights"])
        ctx.update("model", loss)
        return {"ce": loss.detach()}


def hint_count(gen: torch.Generator, p: float = HINT_GEOMETRIC_P) -> int:
    """Number of points for one picture: geometric on 0, 1, 2, ... with success probability ``p`` (mean (1 - p) / p)."""
    count = 0
    while torch.rand(1, generator=gen).item() > p:
        count += 1
    return count


def simulate_hints(
    ab: torch.Tensor, gen: torch.Generator, p: float = HINT_GEOMETRIC_P, max_patch: int = HINT_MAX_PATCH
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random user points from ground-truth ab (B, 2, H, W): (hint_ab (B, 2, H, W), hint_mask (B, 1, H, W)).

    As in Zhang et al. 2017 (section 3.3): per picture the number of points is geometric with p = 1/8 (0, 1,
    2, ... points; none in 1/8 of the pictures, which trains automatic colourisation), each point's centre is
    drawn from a 2-D Gaussian at the picture centre with standard deviation a quarter of each side, its square
    patch side uniform in 1..9 pixels, and the revealed colour is the mean ground-truth ab over the patch.
    ``gen`` is a CPU generator, so the draws do not depend on the device.
    """
    b, _, h, w = ab.shape
    hint_ab = torch.zeros_like(ab)
    mask = torch.zeros_like(ab[:, :1])
    for i in range(b):
        count = hint_count(gen, p)
        if count == 0:
            continue
        centre = torch.randn(count, 2, generator=gen) * torch.tensor([h / 4, w / 4]) + torch.tensor([h / 2, w / 2])
        sizes = torch.randint(1, max_patch + 1, (count,), generator=gen)
        for (cy, cx), size in zip(centre.tolist(), sizes.tolist(), strict=True):
            top = min(max(int(round(cy)) - size // 2, 0), h - min(size, h))
            left = min(max(int(round(cx)) - size // 2, 0), w - min(size, w))
            rows, cols = slice(top, top + size), slice(left, left + size)
            hint_ab[i, :, rows, cols] = ab[i, :, rows, cols].mean(dim=(1, 2), keepdim=True)
            mask[i, :, rows, cols] = 1.0
    return hint_ab, mask


@dataclass(frozen=True)
class ZhangHintsRecipe(Recipe):
    """Huber (smooth L1, delta 1 in Lab units) on ab with randomly simulated user hints, as Zhang et al. 2017.

    The classification branch is not trained here (it only suggests colours to a user), hence
    ``find_unused_parameters`` under DDP. Adam with beta2 0.99 as the paper.
    """

    def optimizers(self, nets: Mapping[str, nn.Module], lr: float) -> dict[str, torch.optim.Optimizer]:
        return {"model": torch.optim.Adam(trainable(nets["model"]), lr=lr, betas=(0.9, 0.99))}

    def step(self, ctx: StepContext, batch: Batch) -> Losses:
        ab = batch["ab"].float()
        hint_ab, hint_mask = simulate_hints(ab, ctx.generator)
        with ctx.autocast():
            pred = ctx.nets["model"](batch["l"], hint_ab, hint_mask)  # (B, 2, H, W) Lab units
        loss = F.smooth_l1_loss(pred.float() / AB_MAX, ab / AB_MAX, beta=1.0 / AB_MAX)
        ctx.update("model", loss)
        return {"huber": loss.detach(), "hints": hint_mask.mean().detach()}
