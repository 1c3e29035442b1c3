"""Frozen-encoder features of the training crops, computed once and reused by every model on that encoder.

A compact model's ImageNet encoder is frozen, so its features of a crop never change: computing them once
(for the crop and its mirror image) and training only the model's head on them makes CPU training many
times faster. Augmentation is then a horizontal flip and a random square aligned to the encoder's stride.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from colorizers.backbone import pretrained_state
from colorizers.color import rgb_to_lab_t
from colorizers.models.pretrained import FrozenEncoder
from training.data import lab_sample, read_rgb, resize, sample_generator

log = logging.getLogger(__name__)

FEATURE_PREFIX = "feat:"  # batch keys "feat:4", "feat:embedding", ...: the encoder's output for the batch
ALIGN = 32  # crops start on multiples of the encoder's total stride, so every feature map crops exactly
CACHE_FORMAT = 2


def cache_path(cache_dir: Path, backbone: str, files: Sequence[Path], size: int) -> Path:
    digest = hashlib.sha256("\n".join([str(CACHE_FORMAT), backbone, str(size), *map(str, files)]).encode())
    return cache_dir / f"{backbone}-{size}px-{digest.hexdigest()[:16]}.pt"


@torch.no_grad()
def compute(files: Sequence[Path], size: int, backbone: str, batch_size: int = 16) -> dict[str, torch.Tensor]:
    """{"rgb": (N, 3, S, S) uint8, "feat:K": (N, 2, ...) float16 for the crop and its mirror}."""
    encoder = FrozenEncoder(backbone)
    encoder.net.load_state_dict(pretrained_state(backbone), strict=True)
    rgb = torch.stack([(resize(read_rgb(f), size) * 255 + 0.5).to(torch.uint8) for f in files])  # (N, 3, S, S)
    parts: dict[str, list[torch.Tensor]] = {}
    started = time.monotonic()
    for start in range(0, len(files), batch_size):
        l = rgb_to_lab_t(rgb[start : start + batch_size].float() / 255)[:, :1]  # (B, 1, S, S)
        views = [encoder(l), encoder(l.flip(-1))]
        for key in views[0]:
            pair = torch.stack([views[0][key], views[1][key]], dim=1)  # (B, 2, ...)
            parts.setdefault(FEATURE_PREFIX + str(key), []).append(pair.half())
        if start == 0 or (start // batch_size) % 20 == 0:
            log.info("encoder features: %d / %d crops, %.0f s", start + len(l), len(files), time.monotonic() - started)
    return {"rgb": rgb, **{key: torch.cat(chunks) for key, chunks in parts.items()}}


def load_or_compute(cache_dir: Path, backbone: str, files: Sequence[Path], size: int) -> dict[str, torch.Tensor]:
    """The cached features of ``files``, computed and saved on first use (memory-mapped when read back)."""
    path = cache_path(cache_dir, backbone, files, size)
    if path.is_file():
        log.info("encoder features from %s", path)
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    cache = compute(files, size, backbone)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    torch.save(cache, partial)
    partial.replace(path)
    return cache


class CachedFeatureDataset(torch.utils.data.Dataset):
    """Training samples {"rgb", "l", "ab", "feat:K"} from a feature cache: random mirror and aligned square."""

    def __init__(self, cache: dict[str, torch.Tensor], *, crop: int | None, seed: int = 0, repeat: int = 1) -> None:
        self.cache = cache
        self.size = cache["rgb"].shape[-1]
        self.crop = crop if crop and crop < self.size else None
        if self.crop is not None and (self.crop % ALIGN or self.size % ALIGN):
            raise ValueError(f"cached-feature crops must be multiples of {ALIGN} px (got {crop} of {self.size})")
        self.seed, self.repeat, self.epoch = seed, max(1, repeat), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.cache["rgb"]) * self.repeat

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        i = index % len(self.cache["rgb"])
        gen = sample_generator(self.seed, self.epoch, index)
        flip = int(torch.randint(0, 2, (1,), generator=gen))
        rgb = self.cache["rgb"][i].float() / 255  # (3, S, S)
        rgb = rgb.flip(-1) if flip else rgb
        top = left = 0
        if self.crop is not None:
            cells = (self.size - self.crop) // ALIGN + 1
            top, left = (int(v) * ALIGN for v in torch.randint(0, cells, (2,), generator=gen))
            rgb = rgb[:, top : top + self.crop, left : left + self.crop]
        sample = lab_sample(rgb.contiguous())
        for key, value in self.cache.items():
            if key.startswith(FEATURE_PREFIX):
                sample[key] = self._crop_features(value[i, flip].float(), top, left)
        return sample

    def _crop_features(self, feature: torch.Tensor, top: int, left: int) -> torch.Tensor:
        if self.crop is None or feature.dim() != 3:  # global vectors (embedding, logits) are not cropped
            return feature
        stride = self.size // feature.shape[-1]
        t, l, c = top // stride, left // stride, self.crop // stride
        return feature[:, t : t + c, l : l + c].contiguous()


def split_features(batch: dict[str, torch.Tensor]) -> dict[int | str, torch.Tensor] | None:
    """Remove the ``feat:`` entries from a batch and return them keyed as the encoder returns them."""
    keys = [k for k in batch if k.startswith(FEATURE_PREFIX)]
    if not keys:
        return None
    features: dict[int | str, torch.Tensor] = {}
    for key in keys:
        name = key.removeprefix(FEATURE_PREFIX)
        features[int(name) if name.isdigit() else name] = batch.pop(key)
    return features
