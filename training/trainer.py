"""The one training loop for every recipe: budgets, phases, mixed precision, DDP, EMA, logs and the export.

Its parts live beside it (``run_data``, ``checkpoint``, ``validation``, ``export``, ``reporting``); this module
runs them in order and writes the progress file the training service reads.
"""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from colorizers.models.pretrained import backbone_of, load_encoder_weights, provided_features
from colorizers.pipeline import select_device
from colorizers.registry import get_spec
from training import checkpoint, features, reporting
from training.distributed import Distributed, default_workers, write_parameter_digest
from training.ema import ModelEMA
from training.export import export_run
from training.recipes import get_recipe
from training.recipes.base import Phase, Recipe, StepContext
from training.run_data import load_run_data
from training.train_config import TrainConfig, TrainResult, resolve_settings
from training.validation import Validator

log = logging.getLogger(__name__)

PROGRESS_NAME = "progress.json"


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
        cfg = self.config
        self.group = Distributed.from_env(select_device(cfg.device))
        self.device = self.group.device
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        self.settings = resolve_settings(cfg, self.recipe, self.spec.working_size, self.device)
        self.workers = default_workers(self.group.world) if cfg.workers is None else cfg.workers
        self.is_main = self.group.is_main
        if cfg.steps is None and cfg.minutes is None and not cfg.resume:
            raise ValueError("give a budget: steps or minutes")

    def _build(self) -> None:
        cfg, recipe, settings = self.config, self.recipe, self.settings
        torch.manual_seed(cfg.seed)  # the same initial weights in every process (DDP also broadcasts rank 0's)
        self.raw = recipe.build(cfg.variant)
        load_encoder_weights(self.raw["model"])  # a compact model's frozen ImageNet encoder
        self.raw = {name: net.to(self.device) for name, net in self.raw.items()}
        self.optimizers = recipe.optimizers(self.raw, settings.lr)
        self.base = {
            name: [(g["lr"], g.get("betas")) for g in opt.param_groups] for name, opt in self.optimizers.items()
        }
        self.scalers = {name: torch.amp.GradScaler(self.device.type, enabled=settings.amp) for name in self.optimizers}
        self.ema = ModelEMA(self.raw["model"], settings.ema_decay)
        torch.manual_seed(self._process_seed(0))  # dropout and the like differ between processes
        generator = torch.Generator().manual_seed(self._process_seed(0))
        self.ctx = StepContext(
            nets=dict(self.raw),
            raw=self.raw,
            optimizers=self.optimizers,
            scalers=self.scalers,
            device=self.device,
            amp=settings.amp,
            grad_clip=recipe.grad_clip,
            generator=generator,
            distributed=self.group,
        )
        self.step = 0
        self.elapsed = 0.0
        self.epoch = 0
        self.batches_in_epoch = 0
        self.prior: dict[str, Any] | None = None  # the weights a fine-tuning run started from
        self.budget = {"steps": cfg.steps, "minutes": cfg.minutes}

    def _data(self) -> None:
        self.data = load_run_data(
            self.config,
            self.recipe,
            self.group,
            self.settings,
            workers=self.workers,
            backbone=backbone_of(self.raw["model"]),
        )
        self.workers = self.data.workers
        self.validation = Validator(self.data.val)

    # --- checkpoints --------------------------------------------------------------------------------------------

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / checkpoint.CHECKPOINT_NAME

    def save_checkpoint(self) -> None:
        if not self.is_main:
            return
        counters = {
            "step": self.step,
            "elapsed": self.elapsed,
            "epoch": self.epoch,
            "batches_in_epoch": self.batches_in_epoch,
            "budget": self.budget,
            "val_history": self.validation.history,
            "prior": self.prior,
        }
        cfg = self.config
        contents = checkpoint.contents(self.ctx, self.ema, model_id=cfg.model, variant=cfg.variant, counters=counters)
        checkpoint.write(self.checkpoint_path, contents)

    def _load_checkpoint(self) -> None:
        cfg = self.config
        ckpt = checkpoint.read(self.checkpoint_path, cfg.model, cfg.variant, self.raw["model"].model_args)
        checkpoint.restore(ckpt, self.ctx, self.ema)
        self.step, self.elapsed = int(ckpt["step"]), float(ckpt["elapsed"])
        self.epoch, self.batches_in_epoch = int(ckpt["epoch"]), int(ckpt["batches_in_epoch"])
        self.validation.history = list(ckpt.get("val_history", []))
        self.prior = ckpt.get("prior")
        if cfg.steps is None and cfg.minutes is None:
            self.budget = dict(ckpt.get("budget", {}))
        if self.is_main:
            checkpoint.restore_random_state(ckpt["rng"], self.ctx)
        else:  # only the main process's random state is saved; the others start a new stream
            torch.manual_seed(self._process_seed(self.step))
            self.ctx.generator.manual_seed(self._process_seed(self.step))

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
            self.data.sampler.set_epoch(self.epoch)
            self.data.train_set.set_epoch(self.epoch)
            self.data.sampler.set_start(self.batches_in_epoch * self.settings.batch_size)
            for batch in self.data.loader:
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
        if self.data.prepare_set is None:
            return
        loader = DataLoader(self.data.prepare_set, batch_size=16, num_workers=self.workers)
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
                self.prior = checkpoint.start_from_weights(cfg.init, cfg.out, cfg.model, self.raw["model"], self.ema)
            if self.is_main and self.checkpoint_path.exists():
                log.warning("starting afresh in %s: the previous checkpoint there will be replaced", self.run_dir)
        self.writer = reporting.open_tensorboard(self.run_dir, cfg.resume, self.step) if self.is_main else None
        self.window = reporting.LossWindow(self.device)
        self.latest: dict[str, float] = {}
        self.phase = self.recipe.phase_at(self._progress(self.step, self.elapsed))[0]
        started = time.monotonic()
        elapsed_before = self.elapsed
        self._prepare()
        self._wrap()

        progress = self._progress(self.step, self.elapsed)
        next_val = (math.floor(progress / cfg.val_interval + 1e-9) + 1) * cfg.val_interval
        last_checkpoint = last_write = time.monotonic()
        show_bar = self.is_main and cfg.progress_bar
        bar = reporting.open_progress_bar(cfg.model, self.budget, self.step, self.elapsed) if show_bar else None
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
            self.window.add(losses)
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
        if cfg.param_digest:
            digest_path = self.run_dir / f"params.rank{self.group.rank}.json"
            write_parameter_digest(digest_path, self.group.rank, self.step, self.raw, self.ema.module)
        if stop:
            self._write_progress("stopped")
            self.group.barrier()
            return TrainResult("stopped", self.run_dir, None, self.step, self.elapsed, self.validation.final_metrics())
        path = None
        if self.is_main:
            self._validate()
            path = self._export()
            self._write_progress("finished", weights=str(path))
        self.group.barrier()
        return TrainResult("finished", self.run_dir, path, self.step, self.elapsed, self.validation.final_metrics())

    # --- logs, validation, export -------------------------------------------------------------------------------

    def _log(self, bar: Any) -> None:
        if self.window.steps:
            self.latest = self.window.take()
        if not self.is_main:
            return
        if self.writer is not None:
            for name, value in self.latest.items():
                self.writer.add_scalar(f"loss/{name}", value, self.step)
            for name, opt in self.optimizers.items():
                self.writer.add_scalar(f"lr/{name}", opt.param_groups[0]["lr"], self.step)
            self.writer.add_scalar("ema/decay", self.ema.current_decay(), self.step)
        if bar is not None:
            shown = {"step": self.step, "phase": self.phase.name, **{k: f"{v:.4g}" for k, v in self.latest.items()}}
            reporting.show_progress(bar, self.budget, self.step, self.elapsed, shown)
        self._write_progress("running")

    def _validate(self) -> None:
        if not self.is_main:
            return
        metrics, shown = self.validation.validate(
            self.ema.module, self.device, self.step, self.elapsed, eligible=self.recipe.exports(self.phase)
        )
        if self.writer is not None:
            for name, value in metrics.items():
                self.writer.add_scalar(f"val/{name.removeprefix('val_')}", value, self.step)
            self.writer.add_image("val/grey_prediction_truth", self.validation.sample_grid(shown), self.step)
        log.info("step %d: validation %s", self.step, metrics)
        self._write_progress("running")

    def _export(self) -> Path:
        return export_run(
            self.ema.module,
            self.config,
            self.recipe,
            self.settings,
            self.data,
            self.validation,
            device=self.device,
            world=self.group.world,
            step=self.step,
            elapsed=self.elapsed,
            budget=self.budget,
            prior=self.prior,
        )

    def _write_progress(self, status: str, **extra: Any) -> None:
        if not self.is_main:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        steps, minutes = self.budget.get("steps"), self.budget.get("minutes")
        progress = self._progress(self.step, self.elapsed)
        rate = self.elapsed / progress if progress > 0 else None
        history = self.validation.history
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
            "val": history[-1] if history else None,
            "val_history": history,
            "batch_size": self.settings.batch_size,
            "world_size": self.group.world,
            "device": str(self.device),
            "updated": reporting.now(),
            **extra,
        }
        reporting.write_json(self.run_dir / PROGRESS_NAME, data)


def train(config: TrainConfig) -> TrainResult:
    """Run one training job to the end of its budget (or a stop signal) and export the EMA weights."""
    return Trainer(config).run()
