"""The data of one training run: the training loader, the validation pictures and the pictures a recipe prepares on."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader

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
from training.distributed import Distributed
from training.recipes.base import Recipe
from training.train_config import RunSettings, TrainConfig

log = logging.getLogger(__name__)

SINGLE_IMAGE_REPEAT = 64  # an epoch of the single-picture recipe shows the picture this many times
VAL_SPLITS = ("unseen", "val")  # validation crops: held-out packages first, else held-out photos


@dataclass
class RunData:
    """What ``load_run_data`` found; ``workers`` is 0 when the training set lives in this process's memory."""

    train_set: ColourDataset | features.CachedFeatureDataset
    sampler: ResumableSampler
    loader: DataLoader
    val: dict[str, torch.Tensor]
    prepare_set: ColourDataset | None
    train_pictures: int
    workers: int
    manifest_sha256: str | None = None
    val_split: str | None = None


def augmentation(recipe: Recipe, crop: int | None) -> Augment | None:
    """The recipe's augmentation; without one, only the random crop (if any)."""
    if recipe.augment:
        return Augment(crop=crop)
    if crop:
        return Augment(flip=False, rotation_deg=0.0, zoom=0.0, shear=0.0, crop=crop)
    return None


def make_dataset(
    sources: list[Path] | int,
    image_size: int,
    seed: int,
    *,
    augment: Augment | None,
    repeat: int = 1,
    picture_seed: int = 0,
) -> ColourDataset:
    """Crops from files, or ``sources`` synthetic pictures."""
    common = {"augment": augment, "seed": seed, "repeat": repeat}
    if isinstance(sources, int):
        return SyntheticDataset(sources, image_size, picture_seed=picture_seed, **common)
    return CropDataset(sources, image_size, **common)


def load_run_data(
    cfg: TrainConfig,
    recipe: Recipe,
    group: Distributed,
    settings: RunSettings,
    *,
    workers: int,
    backbone: str | None,
) -> RunData:
    """Training and validation data of ``cfg`` (files of the data set, or synthetic pictures).

    ``backbone`` names the model's frozen encoder, if any: its features of the training crops are then
    computed once and cached, and only the head trains on them.
    """
    image_size, crop, batch_size = settings.image_size, settings.crop, settings.batch_size
    augment = augmentation(recipe, crop)
    manifest_sha256 = val_split = None
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
        manifest_sha256 = manifest.get("sha256")
        train_sources = files[:1] if recipe.single_image else files
        # The split of held-out source packages guides training when the data set has one.
        val_split = next((split for split in VAL_SPLITS if list_crops(cfg.data_dir, split)), "val")
        val_files = list_crops(cfg.data_dir, val_split)
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
    repeat = max(repeat, math.ceil(batch_size * group.world / count))
    train_set: ColourDataset | features.CachedFeatureDataset
    if backbone and not isinstance(train_sources, int):
        # A frozen encoder: its features of every crop are computed once, then only the head trains.
        cache = features.load_or_compute(cfg.run_dir / "features", backbone, train_sources, image_size)
        train_set = features.CachedFeatureDataset(cache, crop=crop, seed=cfg.seed, repeat=repeat)
        workers = 0  # the cache is in this process's memory (memory-mapped)
    else:
        train_set = make_dataset(train_sources, image_size, cfg.seed, augment=augment, repeat=repeat)
    val_set = make_dataset(val_sources, image_size, cfg.seed, augment=None, picture_seed=val_seed)
    val = stack([val_set[i] for i in range(len(val_set))])
    prepare_set = None
    if recipe.prepare_pictures > 0:
        picked = (
            min(count, recipe.prepare_pictures)
            if isinstance(train_sources, int)
            else spread(train_sources, recipe.prepare_pictures)
        )
        prepare_set = make_dataset(picked, image_size, cfg.seed, augment=None)
    sampler = ResumableSampler(train_set, num_replicas=group.world, rank=group.rank, seed=cfg.seed)
    loader = DataLoader(
        train_set,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        drop_last=True,
        pin_memory=group.device.type == "cuda",
        generator=torch.Generator().manual_seed(cfg.seed),  # keeps the loader off the global random stream
    )
    return RunData(train_set, sampler, loader, val, prepare_set, count, workers, manifest_sha256, val_split)
