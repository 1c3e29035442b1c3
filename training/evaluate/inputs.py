"""What an evaluation runs on: the ground-truth colour photos of a folder and the served models to score."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from colorizers import color, imaging, weights
from colorizers.registry import get_spec, list_models
from training.metrics import colourfulness

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp")


class EvaluationError(ValueError):
    """The evaluation cannot run as asked (no photos, unknown model, nothing to evaluate); the message says why."""


@dataclass
class Photo:
    """One ground-truth colour photo and the grey image every model receives."""

    name: str
    rgb: np.ndarray  # (H, W, 3) uint8 sRGB
    grey: Image.Image  # mode "L", same size, same CIE L as rgb
    colourfulness: float


def load_photos(directory: str | os.PathLike[str], limit: int | None = None) -> list[Photo]:
    """The colour photos of a folder (sorted by name, the first ``limit``), decoded like an upload."""
    directory = Path(directory)
    if not directory.is_dir():
        raise EvaluationError(f"no such folder of photos: {directory}")
    files = sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if limit is not None:
        files = files[: max(0, limit)]
    if not files:
        raise EvaluationError(f"no photos ({', '.join(IMAGE_SUFFIXES)}) in {directory}")
    photos = []
    for path in files:
        try:
            rgb = np.asarray(imaging.decode(path.read_bytes()).rgb)  # (H, W, 3) uint8
        except imaging.ImageError as exc:
            raise EvaluationError(f"{path}: {exc.message}") from exc
        grey = Image.fromarray(color.rgb8_to_gray8(rgb))  # (H, W) uint8 -> mode "L"
        photos.append(Photo(path.name, rgb, grey, colourfulness(rgb)))
    return photos


def select_models(
    models: str | Sequence[str], weights_dir: str | os.PathLike[str] | None = None, *, allow_untrained: bool = False
) -> tuple[list[str], list[dict[str, str]]]:
    """Served names to evaluate and the ones skipped (with the reason).

    ``"all"`` means every served model with weights in the weights folder plus every imported ("-x") model there;
    a served model without weights is skipped unless ``allow_untrained`` (then an untrained compact model runs).
    """
    found = weights.available(weights_dir)
    served = [spec.id for spec in list_models(served_only=True)]
    if isinstance(models, str):
        requested = [m.strip() for m in models.split(",") if m.strip()]
    else:
        requested = list(models)
    if not requested:
        raise EvaluationError("no models given: use --models all or a comma-separated list of model ids")
    skipped: list[dict[str, str]] = []
    if requested == ["all"]:
        imported = [n for n, meta in found.items() if meta.get("provenance") == "imported" and _is_served(meta)]
        requested = served + sorted(n for n in imported if n not in served)
        for spec in list_models(served_only=True):
            if spec.needs_reference:  # colours from a reference photo: scored with references (docs/exemplar.md)
                requested.remove(spec.id)
                skipped.append({"model": spec.id, "reason": "needs a reference photo; see docs/exemplar.md"})
    known = set(served) | {spec.id for spec in list_models()} | set(found)
    unknown = [m for m in requested if m not in known]
    if unknown:
        raise EvaluationError(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    chosen = []
    for name in dict.fromkeys(requested):
        if name in found:
            chosen.append(name)
        elif allow_untrained:
            chosen.append(name)
        else:
            where = weights.weights_dir(weights_dir)
            skipped.append(
                {
                    "model": name,
                    "reason": f"no weights ({name}.safetensors) in {where}; train or import it, "
                    "or pass --allow-untrained to score an untrained model",
                }
            )
    return chosen, skipped


def _is_served(meta: dict[str, Any]) -> bool:
    """Whether a sidecar names a served architecture (one naming none, or an unknown one, does not)."""
    try:
        return get_spec(meta["architecture"]).served
    except KeyError:
        return False
