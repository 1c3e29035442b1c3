"""The one training loop for every recipe: budgets, checkpoints, EMA, mixed precision, DDP, logs and the export."""

from __future__ import annotations

import contextlib
import copy
import datetime as _dt
import hashlib
import json
import logging
import math
import os
import platform
import signal
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from colorizers import weights
from colorizers.color import lab_to_rgb_t, rgb_to_lab_t
from colorizers.models.pretrained import (
    PretrainedColorizer,
    backbone_of,
    confident_chroma,
    load_encoder_weights,
    provided_features,
)
from colorizers.pipeline import select_device
from colorizers.registry import get_spec
from training import features
from training.data import (
    Augment,
    ColourDataset,
    CropDataset,
    ResumableSampler,
    SyntheticDataset,
    list_crops,
    read_manifest,
    spread,
    stack,
)
from training.metrics import delta_e00_t
from training.recipes import Phase, Recipe, get_recipe

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"
PROGRESS_NAME = "progress.json"
TENSORBOARD_DIR = "tensorboard"
CHECKPOINT_FORMAT = 1
#: Largest change of the validation mean CIEDE2000 accepted from storing the weights in float16.
FP16_TOLERANCE = 0.1
SINGLE_IMAGE_REPEAT = 64  # an epoch of the single-picture recipe shows the picture this many times
TB_SAMPLES = 4  # validation pictures shown in TensorBoard


# (chroma floor, gain) pairs validation tries on models with a confidence decoding; (0, 1) is the raw output.
VALIDATION_DECODINGS = tuple((floor, gain) for floor in (0.0, 8.0, 16.0) for gain in (1.0, 1.3))
VAL_SPLITS = ("unseen", "val")  # validation crops: held-out packages first, else held-out photos


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


@dataclass
class TrainResult:
    """What a run produced: weights (None when it was stopped early), where its run directory is, its numbers."""

    status: str
    run_dir: Path
    weights: Path | None
    steps: int
    seconds: float
    metrics: dict[str, float] = field(default_factory=dict)


class ModelEMA:
    """Exponential moving average of a model's parameters (buffers are copied), with the usual warm-up.

    The decay used at update n is min(decay, (1 + n) / (10 + n)), so early averages are not dominated by the
    random initialisation.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay = decay
        self.updates = 0

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        decay = self.current_decay()
        self.updates += 1
        params = dict(model.named_parameters())
        for name, ema_param in self.module.named_parameters():
            ema_param.lerp_(params[name].detach().to(ema_param.dtype), 1.0 - decay)
        buffers = dict(model.named_buffers())
        for name, ema_buffer in self.module.named_buffers():
            ema_buffer.copy_(buffers[name])

    def state_dict(self) -> dict[str, Any]:
        return {"module": self.module.state_dict(), "updates": self.updates, "decay": self.decay}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = int(state["updates"])


class Distributed:
    """The process group under ``torchrun`` (gloo on CPU, nccl on CUDA), or a world of one.

    ``device`` is this process's device: ``cuda:LOCAL_RANK`` when several processes share CUDA devices.
    """

    def __init__(
        self, device: torch.device, rank: int = 0, world: int = 1, local_rank: int = 0, owns_group: bool = False
    ) -> None:
        self.device, self.rank, self.world, self.local_rank = device, rank, world, local_rank
        self.owns_group = owns_group

    @classmethod
    def from_env(cls, device: torch.device) -> Distributed:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls(device)
        rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        if device.type == "cuda":
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        owns = not dist.is_initialized()
        if owns:
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        return cls(device, rank, world, local_rank, owns)

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def all_max(self, values: list[float]) -> list[float]:
        """Element-wise maximum over all processes."""
        if not self.enabled:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return t.tolist()

    def mean(self, value: torch.Tensor) -> float:
        """Mean of a scalar over all processes."""
        if not self.enabled:
            return float(value)
        t = value.detach().float().reshape(1).to(self.device)
        dist.all_reduce(t)
        return float(t) / self.world

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def close(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()


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


def default_workers(world: int) -> int:
    cpus = os.cpu_count() or 1
    return 0 if cpus <= 2 else max(1, min(8, cpus // world - 1))


def hardware_description(device: torch.device, world: int) -> str:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = _cpu_name() or platform.machine() or "CPU"
        threads = torch.get_num_threads()
        name = f"{name} ({threads} torch thread{'' if threads == 1 else 's'})"
    prefix = f"{world} x " if world > 1 else ""
    return f"{prefix}{name}, torch {torch.__version__}"


def _cpu_name() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def parameter_digest(modules: Mapping[str, nn.Module]) -> str:
    """SHA-256 over every parameter (name and float32 bytes) of the modules."""
    digest = hashlib.sha256()
    for key in sorted(modules):
        for name, param in modules[key].named_parameters():
            digest.update(f"{key}.{name}".encode())
            digest.update(param.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


@torch.no_grad()
def evaluate(
    model: nn.Module, val: Mapping[str, torch.Tensor], device: torch.device, batch_size: int = 8
) -> tuple[dict[str, float], torch.Tensor]:
    """Mean CIEDE2000 of ``predict_ab`` on the validation pictures, as a viewer sees them (through sRGB).

    Returns ({"val_delta_e00", "val_ab_l1"}, the first predicted RGB pictures (B', 3, H, W) for logs). For a
    model with a confidence decoding, "val_delta_e00_confident" is the best ΔE00 over a small grid of chroma
    floors and gains: how good the model will be once calibrated, which is what early stopping compares.
    """
    was_training = model.training
    model.eval()
    decoding = isinstance(model, PretrainedColorizer)
    saved = (model.chroma_floor, model.chroma_gain) if decoding else None
    if decoding:
        model.chroma_floor, model.chroma_gain = 0.0, 1.0
    grid = VALIDATION_DECODINGS if decoding else ((0.0, 1.0),)
    de = {decode: [] for decode in grid}
    l1, shown = [], []
    for start in range(0, val["l"].shape[0], batch_size):
        l = val["l"][start : start + batch_size].to(device).float()  # (B, 1, H, W)
        ab_true = val["ab"][start : start + batch_size].to(device).float()  # (B, 2, H, W)
        truth = torch.cat([l, ab_true], dim=1)
        raw = model.predict_ab(l).float()  # (B, 2, H, W)
        for floor, gain in grid:
            ab = confident_chroma(raw, floor, gain)
            rgb = lab_to_rgb_t(torch.cat([l, ab], dim=1))  # (B, 3, H, W) in [0, 1]
            de[floor, gain].append(delta_e00_t(rgb_to_lab_t(rgb), truth).mean(dim=(-2, -1)))  # (B,)
            if (floor, gain) == (0.0, 1.0) and sum(s.shape[0] for s in shown) < TB_SAMPLES:
                shown.append(rgb.cpu())
        l1.append((raw - ab_true).abs().mean(dim=(1, 2, 3)))  # (B,)
    if saved is not None:
        model.chroma_floor, model.chroma_gain = saved
    model.train(was_training)
    means = {decode: float(torch.cat(values).mean()) for decode, values in de.items()}
    metrics = {"val_delta_e00": means[0.0, 1.0], "val_ab_l1": float(torch.cat(l1).mean())}
    if decoding:
        metrics["val_delta_e00_confident"] = min(means.values())
    return metrics, torch.cat(shown)[:TB_SAMPLES]


@torch.no_grad()
def grey_baseline(val: Mapping[str, torch.Tensor]) -> float:
    """Mean CIEDE2000 of the grey picture (ab = 0) against the truth: the number a model has to beat."""
    l = val["l"].float()
    lab_grey = rgb_to_lab_t(lab_to_rgb_t(torch.cat([l, torch.zeros_like(val["ab"])], dim=1)))
    return float(delta_e00_t(lab_grey, torch.cat([l, val["ab"].float()], dim=1)).mean())


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str) + "\n")
    os.replace(tmp, path)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class Trainer:
    """Runs one recipe: ``Trainer(TrainConfig(model="wallner-beta", minutes=30)).run()``."""

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.recipe: Recipe = get_recipe(config.model)
        self.spec = get_spec(config.model)
        self.run_dir = config.run_dir / config.model
        self._stop = False

    # --- set-up -----------------------------------------------------------------------------------------------

    def _setup(self) -> None:
        cfg, recipe = self.config, self.recipe
        self.group = Distributed.from_env(select_device(cfg.device))
        self.device = self.group.device
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        on_gpu = self.device.type == "cuda"
        self.amp = on_gpu and (cfg.amp is None or cfg.amp)
        self.batch_size = cfg.batch_size or (recipe.batch_size if on_gpu else recipe.cpu_batch_size)
        self.image_size = cfg.image_size or recipe.image_size or self.spec.working_size
        crop = cfg.crop if cfg.crop is not None else (recipe.crop if on_gpu else recipe.cpu_crop)
        self.crop = crop if crop and crop < self.image_size else None
        self.lr = cfg.lr or recipe.lr
        self.ema_decay = cfg.ema_decay if cfg.ema_decay is not None else recipe.ema_decay
        self.workers = default_workers(self.group.world) if cfg.workers is None else cfg.workers
        self.is_main = self.group.is_main
        if cfg.steps is None and cfg.minutes is None and not cfg.resume:
            raise ValueError("give a budget: steps or minutes")

    def _build(self) -> None:
        cfg, recipe = self.config, self.recipe
        torch.manual_seed(cfg.seed)  # the same initial weights in every process (DDP also broadcasts rank 0's)
        self.raw = recipe.build(cfg.variant)
        load_encoder_weights(self.raw["model"])  # a compact model's frozen ImageNet encoder
        self.raw = {name: net.to(self.device) for name, net in self.raw.items()}
        self.optimizers = recipe.optimizers(self.raw, self.lr)
        self.base = {
            name: [(g["lr"], g.get("betas")) for g in opt.param_groups] for name, opt in self.optimizers.items()
        }
        self.scalers = {name: torch.amp.GradScaler(self.device.type, enabled=self.amp) for name in self.optimizers}
        self.ema = ModelEMA(self.raw["model"], self.ema_decay)
        torch.manual_seed(self._process_seed(0))  # dropout and the like differ between processes
        generator = torch.Generator().manual_seed(self._process_seed(0))
        self.ctx = StepContext(
            nets=dict(self.raw),
            raw=self.raw,
            optimizers=self.optimizers,
            scalers=self.scalers,
            device=self.device,
            amp=self.amp,
            grad_clip=recipe.grad_clip,
            generator=generator,
            distributed=self.group,
        )
        self.step = 0
        self.elapsed = 0.0
        self.epoch = 0
        self.batches_in_epoch = 0
        self.val_history: list[dict[str, Any]] = []
        self.best: tuple[dict[str, Any], dict[str, torch.Tensor]] | None = None  # best validation entry, EMA state
        self.prior: dict[str, Any] | None = None  # the weights a fine-tuning run started from
        self.budget = {"steps": cfg.steps, "minutes": cfg.minutes}

    def _make_dataset(
        self, sources: list[Path] | int, *, augment: Augment | None, repeat: int = 1, picture_seed: int = 0
    ) -> ColourDataset:
        """Crops from files, or ``sources`` synthetic pictures."""
        common = {"augment": augment, "seed": self.config.seed, "repeat": repeat}
        if isinstance(sources, int):
            return SyntheticDataset(sources, self.image_size, picture_seed=picture_seed, **common)
        return CropDataset(sources, self.image_size, **common)

    def _data(self) -> None:
        cfg, recipe = self.config, self.recipe
        if recipe.augment:
            augment: Augment | None = Augment(crop=self.crop)
        elif self.crop:
            augment = Augment(flip=False, rotation_deg=0.0, zoom=0.0, shear=0.0, crop=self.crop)
        else:
            augment = None
        self.manifest_sha256: str | None = None
        train_sources: list[Path] | int
        val_sources: list[Path] | int
        if cfg.synthetic:
            train_sources = 1 if recipe.single_image else cfg.synthetic
            val_sources = 1 if recipe.single_image else min(cfg.val_samples, cfg.synthetic)
            val_seed = 0 if recipe.single_image else 1
        else:
            files = list_crops(cfg.data_dir, "train")
            if not files:
                raise FileNotFoundError(
                    f"no training crops in {cfg.data_dir}/crops/train: build the data set first "
                    f"(python -m training dataset --data-dir {cfg.data_dir})"
                )
            manifest = read_manifest(cfg.data_dir) or {}
            self.manifest_sha256 = manifest.get("sha256")
            train_sources = files[:1] if recipe.single_image else files
            # The split of held-out source packages guides training when the data set has one.
            self.val_split = next((split for split in VAL_SPLITS if list_crops(cfg.data_dir, split)), "val")
            val_files = list_crops(cfg.data_dir, self.val_split)
            if recipe.single_image:
                val_sources = train_sources
            elif val_files:
                val_sources = spread(val_files, cfg.val_samples)
            else:
                log.warning("no validation crops in %s: validating on training crops", cfg.data_dir)
                val_sources = spread(files, cfg.val_samples)
            val_seed = 0
        count = train_sources if isinstance(train_sources, int) else len(train_sources)
        repeat = SINGLE_IMAGE_REPEAT if recipe.single_image else 1
        repeat = max(repeat, math.ceil(self.batch_size * self.group.world / count))
        backbone = backbone_of(self.raw["model"])
        if backbone and not isinstance(train_sources, int):
            # A frozen encoder: its features of every crop are computed once, then only the head trains.
            cache = features.load_or_compute(cfg.run_dir / "features", backbone, train_sources, self.image_size)
            self.train_set = features.CachedFeatureDataset(cache, crop=self.crop, seed=cfg.seed, repeat=repeat)
            self.workers = 0  # the cache is in this process's memory (memory-mapped)
        else:
            self.train_set = self._make_dataset(train_sources, augment=augment, repeat=repeat)
        val_set = self._make_dataset(val_sources, augment=None, picture_seed=val_seed)
        self.val = stack([val_set[i] for i in range(len(val_set))])
        self.train_pictures = count
        if recipe.prepare_pictures > 0:
            picked = (
                min(count, recipe.prepare_pictures)
                if isinstance(train_sources, int)
                else spread(train_sources, recipe.prepare_pictures)
            )
            self.prepare_set: ColourDataset | None = self._make_dataset(picked, augment=None)
        else:
            self.prepare_set = None
        self.sampler = ResumableSampler(
            self.train_set, num_replicas=self.group.world, rank=self.group.rank, seed=cfg.seed
        )
        self.loader = DataLoader(
            self.train_set,
            batch_size=self.batch_size,
            sampler=self.sampler,
            num_workers=self.workers,
            drop_last=True,
            pin_memory=self.device.type == "cuda",
            generator=torch.Generator().manual_seed(cfg.seed),  # keeps the loader off the global random stream
        )

    # --- checkpoints --------------------------------------------------------------------------------------------

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / CHECKPOINT_NAME

    def _checkpoint(self) -> dict[str, Any]:
        model = self.raw["model"]
        return {
            "format": CHECKPOINT_FORMAT,
            "model_id": self.config.model,
            "variant": self.config.variant,
            "model_args": model.model_args,
            "nets": {name: net.state_dict() for name, net in self.raw.items()},
            "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()},
            "scalers": {name: s.state_dict() for name, s in self.scalers.items()},
            "ema": self.ema.state_dict(),
            "state": {k: (v.detach().cpu() if isinstance(v, torch.Tensor) else v) for k, v in self.ctx.state.items()},
            "step": self.step,
            "elapsed": self.elapsed,
            "epoch": self.epoch,
            "batches_in_epoch": self.batches_in_epoch,
            "budget": self.budget,
            "val_history": self.val_history,
            "prior": self.prior,
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
                "generator": self.ctx.generator.get_state(),
            },
            "saved": _now(),
        }

    def save_checkpoint(self) -> None:
        if not self.is_main:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.checkpoint_path.with_name(f".{CHECKPOINT_NAME}.tmp")
        torch.save(self._checkpoint(), tmp)
        os.replace(tmp, self.checkpoint_path)

    def _load_checkpoint(self) -> None:
        path = self.checkpoint_path
        if not path.exists():
            raise FileNotFoundError(f"nothing to resume: no {CHECKPOINT_NAME} in {self.run_dir}")
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        model = self.raw["model"]
        if ckpt.get("model_id") != self.config.model or ckpt.get("model_args") != model.model_args:
            raise ValueError(
                f"{path} is a checkpoint of {ckpt.get('model_id')} {ckpt.get('variant')} "
                f"({ckpt.get('model_args')}), not of {self.config.model} {self.config.variant}"
            )
        for name, net in self.raw.items():
            net.load_state_dict(ckpt["nets"][name])
        for name, opt in self.optimizers.items():
            opt.load_state_dict(ckpt["optimizers"][name])
        for name, scaler in self.scalers.items():
            scaler.load_state_dict(ckpt["scalers"][name])
        self.ema.load_state_dict(ckpt["ema"])
        self.ema.module.to(self.device)
        self.ctx.state = {
            k: (v.to(self.device) if isinstance(v, torch.Tensor) else v) for k, v in ckpt["state"].items()
        }
        self.step, self.elapsed = int(ckpt["step"]), float(ckpt["elapsed"])
        self.epoch, self.batches_in_epoch = int(ckpt["epoch"]), int(ckpt["batches_in_epoch"])
        self.val_history = list(ckpt.get("val_history", []))
        self.prior = ckpt.get("prior")
        saved_budget = ckpt.get("budget", {})
        if self.config.steps is None and self.config.minutes is None:
            self.budget = dict(saved_budget)
        if self.group.is_main:
            torch.set_rng_state(ckpt["rng"]["torch"])
            self.ctx.generator.set_state(ckpt["rng"]["generator"])
            if self.device.type == "cuda" and ckpt["rng"].get("cuda") is not None:
                torch.cuda.set_rng_state(ckpt["rng"]["cuda"], self.device)
        else:  # only the main process's random state is saved; the others start a new stream
            torch.manual_seed(self._process_seed(self.step))
            self.ctx.generator.manual_seed(self._process_seed(self.step))

    def _load_init(self, name: str) -> None:
        """Start from shipped weights ``name`` in ``out``: the model and its EMA; critics and optimisers start anew."""
        loaded, sidecar = weights.load(name, self.config.out)
        if sidecar["architecture"] != self.config.model:
            raise ValueError(f"weights {name!r} are of {sidecar['architecture']}, not of {self.config.model}")
        model = self.raw["model"]
        weights.load_state(model, loaded.state_dict())  # strict, names what does not fit
        self.ema.module.load_state_dict(model.state_dict())
        self.prior = {
            "weights": name,
            "steps": int(sidecar.get("steps") or 0),
            "train_seconds": float(sidecar.get("train_seconds") or 0.0),
        }
        log.info("starting from weights %s (%d steps)", name, self.prior["steps"])

    def _process_seed(self, step: int) -> int:
        return self.config.seed * 7919 + self.group.rank + 1 + 104729 * step

    # --- the loop -----------------------------------------------------------------------------------------------

    def _progress(self, step: int, elapsed: float) -> float:
        fractions = []
        if self.budget.get("steps") is not None:
            fractions.append(step / self.budget["steps"] if self.budget["steps"] > 0 else 1.0)
        if self.budget.get("minutes") is not None:
            fractions.append(elapsed / (60.0 * self.budget["minutes"]))
        return min(1.0, max(fractions)) if fractions else 1.0

    def _batches(self) -> Iterator[dict[str, torch.Tensor]]:
        while True:
            self.sampler.set_epoch(self.epoch)
            self.train_set.set_epoch(self.epoch)
            self.sampler.set_start(self.batches_in_epoch * self.batch_size)
            for batch in self.loader:
                self.batches_in_epoch += 1
                yield {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
            self.epoch += 1
            self.batches_in_epoch = 0

    def _set_hyperparameters(self, progress: float) -> Phase:
        phase, _ = self.recipe.phase_at(progress)
        factor = self.recipe.lr_factor(progress)
        for name, opt in self.optimizers.items():
            for group, (base_lr, base_betas) in zip(opt.param_groups, self.base[name], strict=True):
                group["lr"] = base_lr * factor
                if base_betas is not None:
                    group["betas"] = phase.betas or base_betas
        return phase

    def _wrap(self) -> None:
        if not self.group.enabled:
            return
        for name, net in self.raw.items():
            if any(p.requires_grad for p in net.parameters()):
                self.ctx.nets[name] = DistributedDataParallel(
                    net,
                    device_ids=[self.device.index] if self.device.type == "cuda" else None,
                    find_unused_parameters=self.recipe.find_unused_parameters,
                )
        # DDP has broadcast rank 0's weights: the average starts from them everywhere.
        self.ema.module.load_state_dict(self.raw["model"].state_dict())

    def _prepare(self) -> None:
        if self.prepare_set is None:
            return
        loader = DataLoader(self.prepare_set, batch_size=16, num_workers=self.workers)
        self.recipe.prepare(self.ctx, ({k: v.to(self.device) for k, v in b.items()} for b in loader))

    def _request_stop(self, signum: int, frame: Any) -> None:
        self._stop = True
        signal.signal(signum, signal.SIG_DFL)  # a second signal ends the process at once
        log.warning("signal %d: stopping after this step and saving a checkpoint", signum)

    def run(self) -> TrainResult:
        handlers: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                handlers[sig] = signal.signal(sig, self._request_stop)
        try:
            return self._run()
        except BaseException as exc:
            if getattr(self, "is_main", False):
                with contextlib.suppress(Exception):
                    self._write_progress("failed", error=f"{type(exc).__name__}: {exc}")
            raise
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
            if hasattr(self, "writer") and self.writer is not None:
                self.writer.close()
            if hasattr(self, "group"):
                self.group.close()

    def _run(self) -> TrainResult:
        cfg = self.config
        self._setup()
        self._build()
        self._data()
        if cfg.resume:
            self._load_checkpoint()
        else:
            if cfg.init:
                self._load_init(cfg.init)
            if self.is_main and self.checkpoint_path.exists():
                log.warning("starting afresh in %s: the previous checkpoint there will be replaced", self.run_dir)
        self.writer = self._open_tensorboard()
        self.grey_delta_e00 = grey_baseline(self.val)
        self.window: dict[str, torch.Tensor] = {}
        self.window_steps = 0
        self.latest: dict[str, float] = {}
        self.phase = self.recipe.phase_at(self._progress(self.step, self.elapsed))[0]
        started = time.monotonic()
        elapsed_before = self.elapsed
        self._prepare()
        self._wrap()

        progress = self._progress(self.step, self.elapsed)
        next_val = (math.floor(progress / cfg.val_interval + 1e-9) + 1) * cfg.val_interval
        last_checkpoint = last_write = time.monotonic()
        bar = self._progress_bar()
        batches = self._batches()
        self._write_progress("running")
        while True:
            self.elapsed, stop = self.group.all_max([elapsed_before + time.monotonic() - started, float(self._stop)])
            progress = self._progress(self.step, self.elapsed)
            if progress >= 1.0 or stop:
                break
            batch = next(batches)
            self.phase = self._set_hyperparameters(progress)
            self.ctx.phase, self.ctx.progress, self.ctx.step = self.phase, progress, self.step
            for net in self.raw.values():
                net.train()
            with provided_features(self.raw["model"], features.split_features(batch)):
                losses = self.recipe.step(self.ctx, batch)
            self.ema.update(self.raw["model"])
            self.step += 1
            for name, value in losses.items():
                value = torch.as_tensor(value, dtype=torch.float32).detach().to(self.device)
                self.window[name] = self.window.get(name, torch.zeros((), device=self.device)) + value
            self.window_steps += 1
            now = time.monotonic()
            if self.step % cfg.log_every == 0 or now - last_write >= 2.0:
                self._log(bar)
                last_write = now
            progress = self._progress(self.step, elapsed_before + now - started)
            if progress >= next_val and progress < 1.0:
                self._validate()
                next_val = (math.floor(progress / cfg.val_interval + 1e-9) + 1) * cfg.val_interval
            if now - last_checkpoint >= 60.0 * cfg.checkpoint_minutes:
                self.save_checkpoint()
                last_checkpoint = now
        self._log(bar)
        if bar is not None:
            bar.close()
        self.save_checkpoint()
        if self.config.param_digest:
            self._write_digest()
        if stop:
            self._write_progress("stopped")
            self.group.barrier()
            return TrainResult("stopped", self.run_dir, None, self.step, self.elapsed, self._final_metrics())
        path = None
        if self.is_main:
            self._validate()
            path = self._export()
            self._write_progress("finished", weights=str(path))
        self.group.barrier()
        return TrainResult("finished", self.run_dir, path, self.step, self.elapsed, self._final_metrics())

    # --- logs, validation, export -------------------------------------------------------------------------------

    def _open_tensorboard(self) -> Any:
        if not self.is_main:
            return None
        folder = self.run_dir / TENSORBOARD_DIR
        if not self.config.resume and folder.is_dir():
            for old in folder.glob("events.out.tfevents.*"):
                old.unlink()
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is an optional extra
            log.warning("tensorboard is not installed: no TensorBoard logs")
            return None
        return SummaryWriter(str(folder), purge_step=self.step if self.config.resume else None)

    def _progress_bar(self) -> Any:
        if not (self.is_main and self.config.progress_bar):
            return None
        from tqdm import tqdm

        if self.budget.get("steps") is not None:
            return tqdm(total=self.budget["steps"], initial=self.step, unit="step", desc=self.config.model)
        total = round(60 * self.budget["minutes"])
        return tqdm(total=total, initial=min(total, round(self.elapsed)), unit="s", desc=self.config.model)

    def _log(self, bar: Any) -> None:
        if self.window_steps:
            self.latest = {k: float(v) / self.window_steps for k, v in self.window.items()}
            self.window, self.window_steps = {}, 0
        if not self.is_main:
            return
        lrs = {name: opt.param_groups[0]["lr"] for name, opt in self.optimizers.items()}
        if self.writer is not None:
            for name, value in self.latest.items():
                self.writer.add_scalar(f"loss/{name}", value, self.step)
            for name, value in lrs.items():
                self.writer.add_scalar(f"lr/{name}", value, self.step)
            self.writer.add_scalar("ema/decay", self.ema.current_decay(), self.step)
        if bar is not None:
            if self.budget.get("steps") is not None:
                bar.n = min(self.step, bar.total)
            else:
                bar.n = min(bar.total, round(self.elapsed))
            shown = {k: f"{v:.4g}" for k, v in self.latest.items()}
            bar.set_postfix({"step": self.step, "phase": self.phase.name, **shown})
        self._write_progress("running")

    def _validate(self) -> dict[str, float]:
        if not self.is_main:
            return {}
        metrics, shown = evaluate(self.ema.module, self.val, self.device)
        metrics["val_delta_e00_grey"] = self.grey_delta_e00
        entry = {"step": self.step, "elapsed": round(self.elapsed, 1), **metrics}
        self.val_history.append(entry)
        key = "val_delta_e00_confident" if "val_delta_e00_confident" in metrics else "val_delta_e00"
        if self.best is None or metrics[key] < self.best[0][key]:
            # Early stopping on the held-out figure: the export takes the best validated weights.
            self.best = (entry, copy.deepcopy(self.ema.module.state_dict()))
        if self.writer is not None:
            for name, value in metrics.items():
                self.writer.add_scalar(f"val/{name.removeprefix('val_')}", value, self.step)
            self.writer.add_image("val/grey_prediction_truth", self._sample_grid(shown), self.step)
        log.info("step %d: validation %s", self.step, metrics)
        self._write_progress("running")
        return metrics

    def _sample_grid(self, predicted: torch.Tensor) -> torch.Tensor:
        """Rows grey / prediction / truth for the first validation pictures: (3, 3 H, n W) in [0, 1]."""
        n = predicted.shape[0]
        truth = self.val["rgb"][:n].float()
        grey = lab_to_rgb_t(torch.cat([self.val["l"][:n].float(), torch.zeros_like(self.val["ab"][:n])], dim=1))
        rows = [torch.cat(list(images), dim=-1) for images in (grey, predicted, truth)]  # each (3, H, n W)
        return torch.cat(rows, dim=-2)  # (3, 3 H, n W)

    def _final_metrics(self) -> dict[str, float]:
        entry = self.best[0] if self.best else (self.val_history[-1] if self.val_history else {})
        return {k: v for k, v in entry.items() if k.startswith("val_")}

    def _export(self) -> Path:
        cfg = self.config
        model = self.ema.module
        if self.best is not None:
            model.load_state_dict(self.best[1])
        metrics = dict(self._final_metrics())
        half = self.recipe.half if cfg.half is None else cfg.half
        if half:
            with tempfile.TemporaryDirectory() as tmp:
                weights.save(model, tmp, name="check", half=True)
                loaded, _ = weights.load("check", tmp)
                fp16, _ = evaluate(loaded.to(self.device), self.val, self.device)
            change = abs(fp16["val_delta_e00"] - metrics["val_delta_e00"])
            metrics["val_delta_e00_fp16"] = fp16["val_delta_e00"]
            if change > FP16_TOLERANCE:
                log.warning("float16 weights change the validation CIEDE2000 by %.3f: storing float32", change)
                half = False
        recipe = self.recipe
        training = {
            "recipe": recipe.describe(),
            "batch_size": self.batch_size,
            "world_size": self.group.world,
            "lr": self.lr,
            "image_size": self.image_size,
            "crop": self.crop,
            "ema_decay": self.ema_decay,
            "mixed_precision": self.amp,
            "seed": cfg.seed,
            "epochs": round(self.step * self.batch_size * self.group.world / max(1, len(self.train_set)), 3),
            "train_pictures": self.train_pictures,
            "val_pictures": int(self.val["l"].shape[0]),
            "val_split": getattr(self, "val_split", None),
            "data": "synthetic" if cfg.synthetic else str(cfg.data_dir),
            "budget": self.budget,
            "started_from": self.prior,
            "best_step": self.best[0]["step"] if self.best else None,
        }
        prior_steps = self.prior["steps"] if self.prior else 0
        prior_seconds = self.prior["train_seconds"] if self.prior else 0.0
        return weights.save(
            model,
            cfg.out,
            name=cfg.model,
            half=half,
            variant=cfg.variant,
            recipe=f"{cfg.model}: {recipe.summary}",
            steps=prior_steps + self.step,
            train_seconds=round(prior_seconds + self.elapsed, 1),
            hardware=hardware_description(self.device, self.group.world),
            working_size=self.image_size,
            data_manifest_sha256=self.manifest_sha256,
            metrics={k: round(v, 4) for k, v in metrics.items()},
            training=training,
        )

    def _write_digest(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        _write_json(
            self.run_dir / f"params.rank{self.group.rank}.json",
            {
                "rank": self.group.rank,
                "step": self.step,
                "parameters": parameter_digest(self.raw),
                "ema": parameter_digest({"model": self.ema.module}),
            },
        )

    def _write_progress(self, status: str, **extra: Any) -> None:
        if not self.is_main:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        steps, minutes = self.budget.get("steps"), self.budget.get("minutes")
        progress = self._progress(self.step, self.elapsed)
        rate = self.elapsed / progress if progress > 0 else None
        data = {
            "model": self.config.model,
            "variant": self.config.variant,
            "status": status,
            "step": self.step,
            "total_steps": steps,
            "budget_seconds": None if minutes is None else 60.0 * minutes,
            "elapsed_seconds": round(self.elapsed, 1),
            "fraction": round(progress, 4),
            "eta_seconds": None if rate is None else round(max(0.0, rate - self.elapsed), 1),
            "phase": self.phase.name,
            "epoch": self.epoch,
            "losses": {k: round(v, 6) for k, v in self.latest.items()},
            "lr": {name: opt.param_groups[0]["lr"] for name, opt in self.optimizers.items()},
            "val": self.val_history[-1] if self.val_history else None,
            "val_history": self.val_history,
            "batch_size": self.batch_size,
            "world_size": self.group.world,
            "device": str(self.device),
            "updated": _now(),
            **extra,
        }
        _write_json(self.run_dir / PROGRESS_NAME, data)


def train(config: TrainConfig) -> TrainResult:
    """Run one training job to the end of its budget (or a stop signal) and export the EMA weights."""
    return Trainer(config).run()


__all__ = ["TrainConfig", "TrainResult", "Trainer", "ModelEMA", "StepContext", "evaluate", "train"]
