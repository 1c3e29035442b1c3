"""What a training run is asked to do (TrainConfig), what that means on a device (RunSettings), what it produced."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from colorizers import weights
from training.recipes.base import Recipe


@dataclass
class TrainConfig:
    """One training run. Exactly one of ``steps`` / ``minutes`` is usually given; with both, the first reached ends it.

    ``None`` means "the recipe's choice" for batch size, learning rate, image size, crop, EMA decay and fp16
    export; ``crop=0`` trains on whole pictures. ``init`` names weights in ``out`` to start from (fine-tuning:
    a new optimiser and schedule; the exported steps and training time add the earlier run's). ``synthetic``
    trains on that many generated pictures instead of ``data_dir`` (tests, smoke runs). ``param_digest`` makes
    every process write a checksum of its final parameters (the DDP test compares them).
    """

    model: str
    variant: str = "compact"
    steps: int | None = None
    minutes: float | None = None
    batch_size: int | None = None
    lr: float | None = None
    image_size: int | None = None
    crop: int | None = None
    data_dir: Path = Path("data")
    synthetic: int | None = None
    out: Path | None = None
    run_dir: Path = Path("runs")
    resume: bool = False
    init: str | None = None
    seed: int = 0
    workers: int | None = None
    val_samples: int = 16
    val_interval: float = 0.1
    checkpoint_minutes: float = 5.0
    log_every: int = 10
    ema_decay: float | None = None
    amp: bool | None = None
    half: bool | None = None
    device: str | None = None
    progress_bar: bool = True
    param_digest: bool = False

    def __post_init__(self) -> None:
        self.data_dir, self.run_dir = Path(self.data_dir), Path(self.run_dir)
        self.out = weights.weights_dir(self.out)
        if self.steps is not None and self.steps < 0:
            raise ValueError("steps must be 0 or more")
        if self.minutes is not None and self.minutes <= 0:
            raise ValueError("minutes must be positive")
        if not 0 < self.val_interval <= 1:
            raise ValueError("val_interval is a fraction of the budget in (0, 1]")
        if self.init and self.resume:
            raise ValueError("init starts a new run from weights; resume continues a checkpoint: give one of them")


@dataclass(frozen=True)
class RunSettings:
    """A config resolved against its recipe on a device: the numbers the run actually uses (the sidecar's)."""

    batch_size: int
    image_size: int
    crop: int | None  # None: whole pictures
    lr: float
    ema_decay: float
    amp: bool


def resolve_settings(cfg: TrainConfig, recipe: Recipe, working_size: int, device: torch.device) -> RunSettings:
    """The config's values, else the recipe's (its GPU or CPU ones), else the model's working size.

    Mixed precision is only used on CUDA; a crop as large as the picture is no crop.
    """
    on_gpu = device.type == "cuda"
    image_size = cfg.image_size or recipe.image_size or working_size
    crop = cfg.crop if cfg.crop is not None else (recipe.crop if on_gpu else recipe.cpu_crop)
    return RunSettings(
        batch_size=cfg.batch_size or (recipe.batch_size if on_gpu else recipe.cpu_batch_size),
        image_size=image_size,
        crop=crop if crop and crop < image_size else None,
        lr=cfg.lr or recipe.lr,
        ema_decay=cfg.ema_decay if cfg.ema_decay is not None else recipe.ema_decay,
        amp=on_gpu and (cfg.amp is None or cfg.amp),
    )


@dataclass
class TrainResult:
    """What a run produced: weights (None when it was stopped early), where its run directory is, its numbers."""

    status: str
    run_dir: Path
    weights: Path | None
    steps: int
    seconds: float
    metrics: dict[str, float] = field(default_factory=dict)
