"""Training recipes: one per catalogue model (networks, losses, optimisers, schedule, phases) for the one trainer."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from colorizers import ab_gamut, create_model
from colorizers.color import AB_MAX, L_CENTER, l_to_gray_rgb_t, rgb_to_lab_t
from colorizers.models.bigcolor import BigColorDiscriminator
from colorizers.models.deoldify import DeOldifyCritic, imagenet_denormalize, imagenet_normalize
from colorizers.models.wallner import AB_SCALE

if TYPE_CHECKING:
    from training.trainer import StepContext

Batch = Mapping[str, torch.Tensor]
Losses = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Phase:
    """A stretch of the budget with its own objective: ``fraction`` of the run, its LR scale and Adam betas."""

    name: str
    fraction: float = 1.0
    lr_scale: float = 1.0
    betas: tuple[float, float] | None = None


def trainable(module: nn.Module) -> list[nn.Parameter]:
    return [p for p in module.parameters() if p.requires_grad]


@dataclass(frozen=True)
class Recipe:
    """How one model is trained; the trainer supplies data, devices, precision, DDP, EMA, checkpoints and logs.

    ``batch_size``/``crop`` apply on a GPU, ``cpu_batch_size``/``cpu_crop`` on a CPU (smaller, so a compact
    variant makes visible progress in minutes). ``crop`` is the side of the random square trained on (None: the
    whole ``image_size`` picture); validation always uses whole pictures at ``image_size`` (None: the model's
    working size). ``lr`` is the main optimiser's; the others keep their ratio to it when ``--lr`` changes it.
    The learning rate follows ``schedule`` within each phase ("cosine": linear warm-up over ``warmup`` of the
    phase, then cosine decay to ``final_lr`` x; "constant"), times the phase's ``lr_scale``.
    """

    model_id: str
    summary: str
    batch_size: int = 16
    cpu_batch_size: int = 8
    lr: float = 1e-3
    ema_decay: float = 0.999
    image_size: int | None = None
    crop: int | None = None
    cpu_crop: int | None = 128
    augment: bool = True
    single_image: bool = False
    half: bool = True
    grad_clip: float | None = None
    schedule: str = "cosine"
    warmup: float = 0.02
    final_lr: float = 0.05
    find_unused_parameters: bool = False
    prepare_pictures: int = 0
    phases: tuple[Phase, ...] = (Phase("train"),)

    # --- what the trainer calls ---------------------------------------------------------------------------------

    def build(self, variant: str) -> dict[str, nn.Module]:
        """The networks; ``"model"`` is the one exported (its EMA weights), others (critics) are training-only."""
        return {"model": create_model(self.model_id, variant)}

    def optimizers(self, nets: Mapping[str, nn.Module], lr: float) -> dict[str, torch.optim.Optimizer]:
        """One optimiser per network that learns, keyed like ``nets``."""
        return {"model": torch.optim.Adam(trainable(nets["model"]), lr=lr)}

    def prepare(self, ctx: StepContext, batches: Iterable[Batch]) -> None:
        """Statistics a loss needs from the training data, stored in ``ctx.state`` (kept in checkpoints).

        Called once before the first step with batches of up to ``prepare_pictures`` training pictures
        (whole, not augmented, spread over the data set), when that is above 0.
        """

    def step(self, ctx: StepContext, batch: Batch) -> Losses:
        """One training step on a batch (already on the device); returns the losses to log (detached)."""
        raise NotImplementedError

    def phase_at(self, progress: float) -> tuple[Phase, float]:
        """The phase at ``progress`` (fraction of the budget, 0..1) and how far through that phase it is."""
        total = sum(p.fraction for p in self.phases)
        start = 0.0
        for phase in self.phases:
            end = start + phase.fraction / total
            if progress < end or phase is self.phases[-1]:
                return phase, min(1.0, max(0.0, (progress - start) / max(end - start, 1e-12)))
            start = end
        raise AssertionError("unreachable")

    def lr_factor(self, progress: float) -> float:
        """Multiplier of every optimiser's base LR at ``progress``."""
        phase, within = self.phase_at(progress)
        if self.schedule == "constant":
            return phase.lr_scale
        if self.schedule != "cosine":
            raise ValueError(f"unknown schedule {self.schedule!r}")
        if within < self.warmup:
            return phase.lr_scale * max(within / self.warmup, 0.01)
        t = (within - self.warmup) / max(1.0 - self.warmup, 1e-12)
        return phase.lr_scale * (self.final_lr + (1.0 - self.final_lr) * 0.5 * (1.0 + math.cos(math.pi * t)))

    def describe(self) -> dict[str, Any]:
        """The recipe's settings for sidecars and progress files."""
        return {
            "summary": self.summary,
            "lr": self.lr,
            "ema_decay": self.ema_decay,
            "schedule": self.schedule,
            "phases": [{"name": p.name, "fraction": p.fraction, "lr_scale": p.lr_scale} for p in self.phases],
        }


# --------------------------------------------------------------------------------------------------------------
# Wallner (tutorial): regression of ab / 128 through tanh
# --------------------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------------------
# Zhang et al.: ECCV 2016 (classification with rebalancing) and SIGGRAPH 2017 (regression with simulated hints)
# --------------------------------------------------------------------------------------------------------------


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

    def step(self, ctx: StepContext, batch: Batch) -> Losses:
        with ctx.autocast():
            logits = ctx.nets["model"](batch["l"])  # (B, 313, H/4, W/4)
        with torch.no_grad():
            ab = F.adaptive_avg_pool2d(batch["ab"].float(), logits.shape[-2:])  # (B, 2, H/4, W/4)
            target = ab_gamut.soft_encode(ab)  # (B, 313, H/4, W/4)
        loss = ab_gamut.rebalanced_cross_entropy(logits, target, ctx.state["rebalance_weights"])
        ctx.update("model", loss)
        return {"ce": loss.detach()}


HINT_GEOMETRIC_P = 1.0 / 8.0
HINT_MAX_PATCH = 9


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


# --------------------------------------------------------------------------------------------------------------
# DeOldify: NoGAN
# --------------------------------------------------------------------------------------------------------------

CRITIC_WIDTHS = {"tiny": 8, "compact": 48, "full": 256}


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


# --------------------------------------------------------------------------------------------------------------
# BigColor: hinge GAN + reconstruction
# --------------------------------------------------------------------------------------------------------------

DISCRIMINATOR_WIDTHS = {"tiny": (8, 8, 16, 16), "compact": (32, 64, 128, 128), "full": (64, 128, 256, 512)}


@dataclass(frozen=True)
class BigColorRecipe(Recipe):
    """Reconstruction L1 on RGB plus the hinge adversarial loss of a projection-style discriminator.

    The discriminator sees the colour picture together with its lightness (4 channels), so it judges whether
    the colours fit that grey picture. Each step: one discriminator step (hinge), then one generator step on
    the same noise z ~ N(0, 0.8^2). Adam(0, 0.999), learning rates 1e-4 (generator) and 3e-5 (discriminator),
    EMA of the generator with decay 0.999, constant learning rate.
    """

    d_lr_ratio: float = 0.3
    adv_weight: float = 0.05
    betas: tuple[float, float] = (0.0, 0.999)

    def build(self, variant: str) -> dict[str, nn.Module]:
        widths = DISCRIMINATOR_WIDTHS.get(variant, DISCRIMINATOR_WIDTHS["compact"])
        return {"model": create_model(self.model_id, variant), "critic": BigColorDiscriminator(widths, in_channels=4)}

    def optimizers(self, nets: Mapping[str, nn.Module], lr: float) -> dict[str, torch.optim.Optimizer]:
        return {
            "model": torch.optim.Adam(trainable(nets["model"]), lr=lr, betas=self.betas),
            "critic": torch.optim.Adam(trainable(nets["critic"]), lr=lr * self.d_lr_ratio, betas=self.betas),
        }

    def step(self, ctx: StepContext, batch: Batch) -> Losses:
        l = batch["l"].float()
        real = batch["rgb"].float() * 2 - 1  # (B, 3, H, W) in [-1, 1], the generator's range
        grey = l / L_CENTER - 1  # (B, 1, H, W) in [-1, 1]
        generator = ctx.raw["model"]
        z = torch.randn(l.shape[0], generator.z_dim, generator=ctx.generator) * generator.z_std  # (B, z_dim)
        with ctx.autocast():
            fake = ctx.nets["model"](l, z.to(l.device))  # (B, 3, H, W) in [-1, 1]
            pair = torch.cat([torch.cat([real, grey], 1), torch.cat([fake.detach(), grey], 1)])  # (2B, 4, H, W)
            scores = ctx.nets["critic"](pair)  # (2B,)
        n = l.shape[0]
        d_loss = F.relu(1 - scores[:n].float()).mean() + F.relu(1 + scores[n:].float()).mean()
        ctx.update("critic", d_loss)
        with ctx.autocast():
            g_score = ctx.nets["critic"](torch.cat([fake, grey], 1))  # (B,)
        rec = F.l1_loss(fake.float(), real)
        adv = -g_score.float().mean()
        ctx.update("model", rec + self.adv_weight * adv)
        return {"g_rec": rec.detach(), "g_adv": adv.detach(), "d_hinge": d_loss.detach()}


# --------------------------------------------------------------------------------------------------------------
# The student project's CNN
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColoriaRecipe(Recipe):
    """Mean absolute error between the sigmoid RGB output and the photo; Adam 1e-3 (the student project's)."""

    def step(self, ctx: StepContext, batch: Batch) -> Losses:
        with ctx.autocast():
            rgb = ctx.nets["model"](batch["l"])  # (B, 3, H, W) in [0, 1]
        loss = F.l1_loss(rgb.float(), batch["rgb"].float())
        ctx.update("model", loss)
        return {"mae": loss.detach()}


# --------------------------------------------------------------------------------------------------------------
# Exemplar (He et al. 2018): colours from a reference photo
# --------------------------------------------------------------------------------------------------------------


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


EXEMPLAR_RECIPE = ExemplarRecipe(
    "exemplar",
    "L1 on ab with the reference another crop/scale/mirror of the same photo (and another photo as an "
    "unrelated reference); trains the confidence gate only, Adam 1e-2",
    lr=1e-2,
    batch_size=16,
    cpu_batch_size=8,
    ema_decay=0.99,
    half=False,
)


# --------------------------------------------------------------------------------------------------------------
# The catalogue
# --------------------------------------------------------------------------------------------------------------

_NOGAN_PHASES = (
    Phase("generator", 0.75),
    Phase("critic", 0.15),
    Phase("gan", 0.10, lr_scale=0.1, betas=(0.0, 0.9)),
)

RECIPES: dict[str, Recipe] = {
    r.model_id: r
    for r in (
        WallnerRecipe(
            "wallner-alpha",
            "overfit one picture (the tutorial's alpha demo): MSE on ab/128, RMSprop 1e-3, no augmentation",
            batch_size=1,
            cpu_batch_size=1,
            optimizer="rmsprop",
            ema_decay=0.99,
            augment=False,
            single_image=True,
            crop=None,
            cpu_crop=None,
            schedule="constant",
        ),
        WallnerRecipe(
            "wallner-beta",
            "MSE on ab/128, Adam 1e-3, flip/zoom/rotation/shear augmentation",
            batch_size=32,
            cpu_batch_size=8,
        ),
        WallnerRecipe(
            "wallner-full",
            "MSE on ab/128, the global embedding from the frozen pretrained classifier (compact) or trained jointly "
            "(tiny), Adam 1e-3",
            batch_size=32,
            cpu_batch_size=8,
        ),
        ZhangClassificationRecipe(
            "zhang-eccv16",
            "multinomial cross-entropy over 313 ab bins, soft-encoding (5 nearest, sigma 5), class rebalancing "
            "(lambda 0.5, prior from the training data), AdamW(0.9, 0.99) 3e-4",
            lr=3e-4,
            batch_size=32,
            cpu_batch_size=8,
            prepare_pictures=512,
        ),
        ZhangHintsRecipe(
            "zhang-siggraph17",
            "Huber on ab with simulated hints (geometric count p=1/8, Gaussian positions, 1-9 px patches), "
            "Adam(0.9, 0.99) 3e-4",
            lr=3e-4,
            batch_size=32,
            cpu_batch_size=8,
            find_unused_parameters=True,
        ),
        NoGANRecipe(
            "deoldify-artistic",
            "NoGAN: generator pretraining (L1 RGB + ab), critic pretraining (BCE), GAN phase with critic "
            "threshold 0.65",
            lr=1e-3,
            batch_size=16,
            cpu_batch_size=8,
            phases=_NOGAN_PHASES,
        ),
        NoGANRecipe(
            "deoldify-stable",
            "NoGAN: generator pretraining (L1 RGB + ab), critic pretraining (BCE), GAN phase with critic "
            "threshold 0.65",
            lr=1e-3,
            batch_size=16,
            cpu_batch_size=8,
            phases=_NOGAN_PHASES,
        ),
        BigColorRecipe(
            "bigcolor",
            "hinge GAN + L1 reconstruction, Adam(0, 0.999) G 1e-4 / D 3e-5, EMA 0.999",
            lr=1e-4,
            batch_size=16,
            cpu_batch_size=8,
            schedule="constant",
        ),
        EXEMPLAR_RECIPE,
        ColoriaRecipe(
            "coloria-cnn",
            "MAE on RGB, Adam 1e-3, flip/zoom/rotation/shear augmentation, 160 px",
            batch_size=32,
            cpu_batch_size=16,
            cpu_crop=None,
        ),
    )
}


def get_recipe(model_id: str) -> Recipe:
    try:
        return RECIPES[model_id]
    except KeyError:
        raise KeyError(f"no training recipe for {model_id!r}; recipes: {', '.join(sorted(RECIPES))}") from None


__all__ = [
    "RECIPES",
    "BigColorRecipe",
    "ColoriaRecipe",
    "ExemplarRecipe",
    "NoGANRecipe",
    "Phase",
    "Recipe",
    "WallnerRecipe",
    "ZhangClassificationRecipe",
    "ZhangHintsRecipe",
    "get_recipe",
    "hint_count",
    "simulate_hints",
]
