"""The contract between the trainer and the recipes: a recipe's settings and hooks, and what its step works with.

Both the trainer and every recipe import this module, and neither imports the other.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from colorizers import create_model
from training.distributed import Distributed

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


class StepContext:
    """What a recipe's ``step`` works with: networks (DDP-wrapped where distributed), optimisers, precision, state."""

    def __init__(
        self,
        *,
        nets: dict[str, nn.Module],
        raw: dict[str, nn.Module],
        optimizers: dict[str, torch.optim.Optimizer],
        scalers: dict[str, torch.amp.GradScaler],
        device: torch.device,
        amp: bool,
        grad_clip: float | None,
        generator: torch.Generator,
        distributed: Distributed,
    ) -> None:
        self.nets, self.raw, self.optimizers, self.scalers = nets, raw, optimizers, scalers
        self.device, self.amp, self.grad_clip = device, amp, grad_clip
        self.generator = generator  # CPU generator for the recipe's own random draws (hints, noise)
        self.distributed = distributed
        self.state: dict[str, Any] = {}  # recipe statistics and switches, saved in checkpoints
        self.phase: Phase = Phase("train")
        self.progress = 0.0
        self.step = 0

    def autocast(self) -> contextlib.AbstractContextManager:
        """Mixed precision (float16) on CUDA; a no-op on CPU."""
        return torch.autocast(self.device.type, dtype=torch.float16, enabled=self.amp)

    def update(self, name: str, loss: torch.Tensor) -> None:
        """Backpropagate ``loss`` and step optimiser ``name`` (gradient scaling and clipping included).

        Every optimiser's gradients are cleared first, so a loss that flows through another network (a
        generator's loss through its critic) leaves nothing behind for that network's next step.
        """
        for optimizer in self.optimizers.values():
            optimizer.zero_grad(set_to_none=True)
        optimizer, scaler = self.optimizers[name], self.scalers[name]
        scaler.scale(loss).backward()
        if self.grad_clip:
            scaler.unscale_(optimizer)
            params = [p for group in optimizer.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(params, self.grad_clip)
        scaler.step(optimizer)
        scaler.update()

    def mean_across_ranks(self, value: torch.Tensor) -> float:
        """The mean of a scalar over all processes (the same number everywhere, for decisions like GAN switching)."""
        return self.distributed.mean(value)


@dataclass(frozen=True)
class Recipe:
    """How one model is trained; the trainer supplies data, devices, precision, DDP, EMA, checkpoints and logs.

    ``batch_size``/``crop`` apply on a GPU, ``cpu_batch_size``/``cpu_crop`` on a CPU (smaller, so a compact
    variant makes visible progress in minutes). ``crop`` is the side of the random square trained on (None: the
    whole ``image_size`` picture); validation always uses whole pictures at ``image_size`` (None: the model's
    working size). ``lr`` is the main optimiser's; the others keep their ratio to it when ``--lr`` changes it.
    The learning rate follows ``schedule`` within each phase ("cosine": linear warm-up over ``warmup`` of the
    phase, then cosine decay to ``final_lr`` x; "constant"), times the phase's ``lr_scale``. The exported
    weights are the best validated ones of ``export_phases`` (a GAN's, so that it ships with what defines it).
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
    export_phases: tuple[str, ...] | None = None  # phases whose validated weights may be exported (None: all)

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

    def exports(self, phase: Phase) -> bool:
        """Whether weights validated in ``phase`` may be the ones exported."""
        return self.export_phases is None or phase.name in self.export_phases

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
