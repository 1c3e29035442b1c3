"""Timing the inference path on the CPU: the model pass at a square size, and each stage of a whole photo."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from PIL import Image

from colorizers import imaging, weights
from colorizers.pipeline import Colorizer
from colorizers.registry import create_model
from training.benchmark_models.counting import MB
from training.benchmark_models.photo import PHOTO_JPEG_QUALITY, jpeg_bytes, synthetic_photo
from training.benchmark_models.timing import summarise, time_calls


def load_colorizer(model_id: str, variant: str) -> tuple[Colorizer, str]:
    """The served model on the CPU: trained weights when the store has them, else an untrained ``variant``."""
    found = weights.available().get(model_id)
    if found is not None:
        return Colorizer.load(model_id, device="cpu"), f"{found.get('provenance', 'trained')} ({found.get('variant')})"
    return Colorizer(create_model(model_id, variant), device="cpu"), f"untrained ({variant})"


def latency(colorizer: Colorizer, size: int, repeats: int, warmup: int) -> dict[str, Any]:
    """``predict_ab`` on a (1, 1, size, size) L tensor taken from a photo, under inference mode."""
    grey = imaging.to_model_input(synthetic_photo(size * 4 // 3, size, seed=1), size)
    l = torch.from_numpy(imaging.lightness(grey))[None, None]  # (H, W) -> (1, 1, H, W)
    model = colorizer.model

    def run() -> None:
        with torch.inference_mode():
            model.predict_ab(l)

    return summarise(time_calls(run, repeats, warmup))


def photo_split(
    width: int,
    height: int,
    colorizers: dict[str, Colorizer],
    repeats: int,
    model_repeats: int,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Time every stage of the inference path for one photo of ``width`` x ``height`` (JPEG q90 in memory).

    Stages that do not depend on the model (decode, resize to each working size, chroma merge, encodes) are
    timed ``repeats`` times, once for all models; the model pass (``colorize_working`` on the working-size
    grey: lightness, ``predict_ab``, Lab to RGB) ``model_repeats`` times for each model.
    """
    data = jpeg_bytes(synthetic_photo(width, height))
    log(
        f"  photo {width}x{height} ({width * height / 1e6:.1f} MP, JPEG q{PHOTO_JPEG_QUALITY}: {len(data) / MB:.1f} MB)"
    )
    rgb = imaging.decode(data).rgb
    stages: dict[str, Any] = {"decode": summarise(time_calls(lambda: imaging.decode(data), repeats))}
    greys: dict[int, Image.Image] = {}
    resize: dict[str, Any] = {}
    for size in sorted({c.working_size for c in colorizers.values()}, reverse=True):
        greys[size] = imaging.to_model_input(rgb, size)
        resize[str(size)] = summarise(time_calls(lambda size=size: imaging.to_model_input(rgb, size), repeats))
    stages["to_model_input"] = resize

    model_pass: dict[str, Any] = {}
    colour_small = None
    for model_id, colorizer in colorizers.items():
        grey = greys[colorizer.working_size]
        colour = colorizer.colorize_working(grey)  # warm-up, and the image merged below
        if colour_small is None or colour.size[0] > colour_small.size[0]:
            colour_small = colour
        model_pass[model_id] = summarise(time_calls(lambda c=colorizer, g=grey: c.colorize_working(g), model_repeats))
    assert colour_small is not None

    merged = imaging.merge_chroma(rgb, colour_small)
    stages["merge_chroma"] = summarise(time_calls(lambda: imaging.merge_chroma(rgb, colour_small), repeats))
    for fmt in ("jpeg", "png"):
        stages[f"encode_{fmt}"] = {
            **summarise(time_calls(lambda fmt=fmt: imaging.encode(merged, fmt), repeats)),
            "bytes": len(imaging.encode(merged, fmt)),
        }

    totals = {}
    for model_id, colorizer in colorizers.items():
        common = (
            stages["decode"]["median_ms"]
            + resize[str(colorizer.working_size)]["median_ms"]
            + model_pass[model_id]["median_ms"]
            + stages["merge_chroma"]["median_ms"]
        )
        totals[model_id] = {
            f"{fmt}_ms": round(common + stages[f"encode_{fmt}"]["median_ms"], 2) for fmt in ("jpeg", "png")
        }
    return {
        "width": width,
        "height": height,
        "megapixels": round(width * height / 1e6, 2),
        "jpeg_quality": PHOTO_JPEG_QUALITY,
        "input_bytes": len(data),
        "stages": stages,
        "model_pass": model_pass,
        "totals_median_ms": totals,
    }
