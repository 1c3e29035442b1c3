"""Each model, and the grey baseline, over the photos through the serving pipeline: report entries and outputs."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from colorizers.pipeline import Colorizer
from training.evaluate.inputs import Photo
from training.evaluate.scoring import BASELINE, TruthCache, score, summarise

GRID_ROWS = 4  # outputs kept per model for the grid picture
SEED = 0  # models with diverse outputs are scored with this seed, so a report can be reproduced

_PROVENANCE_KEYS = (
    "provenance",
    "architecture",
    "variant",
    "recipe",
    "steps",
    "train_seconds",
    "hardware",
    "source",
    "data_manifest_sha256",
    "parameters",
    "dtype",
    "created",
)


def provenance(meta: dict[str, Any]) -> dict[str, Any]:
    """The sidecar facts a report shows: how the weights were made (trained, imported) and with what."""
    found = {key: meta[key] for key in _PROVENANCE_KEYS if meta.get(key) is not None}
    found.setdefault("provenance", "untrained")
    return found


def evaluate_model(
    name: str,
    photos: Sequence[Photo],
    truths: TruthCache,
    *,
    weights_dir: str | os.PathLike[str] | None = None,
    size: int | None = None,
    device: str | torch.device | None = None,
    keep: int = GRID_ROWS,
) -> tuple[dict[str, Any], list[np.ndarray]]:
    """Run one model on every photo's grey image; returns its report entry and the first ``keep`` outputs."""
    colorizer = Colorizer.load(name, weights_dir, device=device)
    seed = SEED if colorizer.spec.supports_seed else None
    colorizer.check_options(seed=seed, size=size)
    colorizer.colorize(photos[0].grey, seed=seed, size=size)  # warm-up: first-call allocations are not timed
    per_image, kept = [], []
    for index, photo in enumerate(photos):
        start = time.perf_counter()
        output = colorizer.colorize(photo.grey, seed=seed, size=size)
        latency_ms = (time.perf_counter() - start) * 1000.0
        rgb = np.asarray(output.convert("RGB"))  # (H, W, 3) uint8
        row = {"image": photo.name, **score(photo.rgb, rgb, truths.lab(index), photo.colourfulness)}
        row["latency_ms"] = latency_ms
        per_image.append(row)
        if index < keep:
            kept.append(rgb)
    entry = {
        "name": name,
        "baseline": False,
        "architecture": colorizer.spec.id,
        "family": colorizer.spec.family,
        "working_size": size or colorizer.working_size,
        "seed": seed,
        "provenance": provenance(colorizer.meta),
        "mean": summarise(per_image),
        "per_image": per_image,
    }
    if colorizer.meta.get("provenance") == "untrained":
        entry["provenance"]["variant"] = "compact"
    del colorizer  # free the model before the next one loads
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return entry, kept


def evaluate_baseline(photos: Sequence[Photo], truths: TruthCache) -> dict[str, Any]:
    """The grey image itself as the output (a = b = 0): the score of not colourising at all."""
    per_image = []
    for index, photo in enumerate(photos):
        grey = np.asarray(photo.grey.convert("RGB"))  # (H, W, 3) uint8
        per_image.append({"image": photo.name, **score(photo.rgb, grey, truths.lab(index), photo.colourfulness)})
        per_image[-1]["latency_ms"] = None
    return {
        "name": BASELINE,
        "baseline": True,
        "architecture": None,
        "provenance": {"provenance": "baseline"},
        "mean": summarise(per_image),
        "per_image": per_image,
    }
