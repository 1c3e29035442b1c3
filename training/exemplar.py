"""The exemplar model's build with an automatic fallback head, and its measurement (its training recipe, which
trains the three gate scalars on pairs made from the training photos, is ``training/recipes/exemplar.py``).

* ``build_exemplar``: the served ``exemplar`` weights, with an automatic compact model's trained weights copied
  in as the fallback head (``python -m training build-exemplar --fallback wallner-full``), so the archive is
  self-contained.
* ``measure``: mean CIEDE2000 on a folder of colour photos with a reference made from another view of each photo,
  with an unrelated photo as the reference, without a reference (the automatic fallback) and for grey
  (``python -m training exemplar-eval --images data/val_photos --out runs/exemplar``).
"""

from __future__ import annotations

import json
import logging
import statistics
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageOps

from colorizers import create_model, weights
from colorizers.color import rgb_to_lab
from colorizers.models.pretrained import ENCODER_PREFIX, backbone_of, load_encoder_weights
from colorizers.pipeline import Colorizer, ReferenceRequestError, reference_is_colourful
from training.metrics import delta_e00
from training.recipes import get_recipe

log = logging.getLogger(__name__)

MODEL_ID = "exemplar"
PHOTO_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}


# --------------------------------------------------------------------------------------------------------------
# Build: the gate plus an automatic model's trained head as the fallback
# --------------------------------------------------------------------------------------------------------------

GATE_KEYS = ("log_temperature", "threshold", "log_slope")


def build_exemplar(
    fallback: str | None,
    weights_dir: str | Path | None = None,
    out_dir: str | Path | None = None,
    *,
    gate_from: str | None = MODEL_ID,
) -> Path:
    """Write ``exemplar`` weights into ``out_dir`` (default: the weights folder) with ``fallback``'s trained weights
    as the automatic head (None: grey). The gate comes from existing ``gate_from`` weights when there are any,
    else from the calibrated defaults."""
    directory = weights.weights_dir(weights_dir)
    out = Path(out_dir) if out_dir else directory
    meta: dict[str, Any] = {"variant": "compact", "provenance": "trained"}
    if fallback:
        head, head_meta = weights.load(fallback, directory)
        model = create_model(
            MODEL_ID, "compact", fallback=head_meta["architecture"], fallback_args=dict(head.model_args)
        )
        shared = ENCODER_PREFIX if backbone_of(head) else None  # a head on the encoder shares the exemplar's
        state = {k: v for k, v in head.state_dict().items() if not (shared and k.startswith(shared))}
        model.fallback.load_state_dict(state, strict=True)
        meta["fallback"] = {
            "name": fallback,
            "architecture": head_meta["architecture"],
            "metrics": head_meta.get("metrics", {}),
            "created": head_meta.get("created"),
        }
        if head_meta.get("working_size"):
            meta["working_size"] = head_meta["working_size"]
    else:
        model = create_model(MODEL_ID, "compact")
        meta["fallback"] = None
    load_encoder_weights(model)
    gate_source = directory / f"{gate_from}.json" if gate_from else None
    if gate_source is not None and gate_source.exists():
        trained, trained_meta = weights.load(gate_from, directory)
        with torch.no_grad():
            for key in GATE_KEYS:
                getattr(model, key).copy_(getattr(trained, key))
        meta["gate"] = {"from": gate_from, "steps": trained_meta.get("steps")}
    else:
        meta["gate"] = {"from": "calibrated defaults"}
    meta["recipe"] = f"{MODEL_ID}: {get_recipe(MODEL_ID).summary}"
    meta["source"] = f"gate + fallback head {fallback or '(grey)'}"
    return weights.save(model.eval(), out, name=MODEL_ID, half=True, **meta)


# --------------------------------------------------------------------------------------------------------------
# Measurement
# --------------------------------------------------------------------------------------------------------------


def photo_view(photo: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Another view of the same photo: a crop of 60-85 % of each side, rescaled 0.6-1.4 x, mirrored."""
    w, h = photo.size
    share = rng.uniform(0.6, 0.85)
    cw, ch = max(16, int(w * share)), max(16, int(h * share))
    left, top = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    scale = rng.uniform(0.6, 1.4)
    view = photo.crop((left, top, left + cw, top + ch))
    view = view.resize((max(16, int(cw * scale)), max(16, int(ch * scale))), Image.Resampling.BICUBIC)
    return ImageOps.mirror(view)


def _lab(image: Image.Image) -> np.ndarray:
    return rgb_to_lab(np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0)


def _score(truth: np.ndarray, result: Image.Image) -> float:
    return float(delta_e00(truth, _lab(result)).mean())


def list_photos(folder: Path, limit: int | None = None) -> list[Path]:
    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
    return files[:limit] if limit else files


def unrelated_to(photos: list[Image.Image], index: int) -> Image.Image:
    """The next photo with colour after ``index`` (an unrelated reference), or a plain green picture."""
    for step in range(1, len(photos)):
        other = photos[(index + step) % len(photos)]
        if reference_is_colourful(other):
            return other
    return Image.new("RGB", photos[index].size, (40, 160, 40))


def measure(
    colorizer: Colorizer, photos: list[Image.Image], *, names: list[str] | None = None, seed: int = 0
) -> dict[str, Any]:
    """Mean CIEDE2000 of grey, the automatic fallback, a same-scene reference and an unrelated reference."""
    rng = np.random.default_rng(seed)
    names = names or [f"photo{i}" for i in range(len(photos))]
    rows = []
    for i, photo in enumerate(photos):
        truth = _lab(photo)
        grey = np.concatenate([truth[..., :1], np.zeros_like(truth[..., 1:])], axis=-1)
        automatic = colorizer.colorize(photo)
        row = {"image": names[i], "grey": float(delta_e00(truth, grey).mean()), "automatic": _score(truth, automatic)}
        for key, reference in (("same_scene", photo_view(photo, rng)), ("unrelated", unrelated_to(photos, i))):
            try:
                row[key] = _score(truth, colorizer.colorize(photo, reference=reference))
            except ReferenceRequestError as exc:  # a photo without colour cannot be its own reference
                row[key], row[f"{key}_refused"] = row["automatic"], str(exc)
        rows.append(row)
    keys = ("grey", "automatic", "same_scene", "unrelated")
    mean = {k: round(statistics.fmean(r[k] for r in rows), 3) for k in keys}
    mean["same_scene_over_grey"] = round(mean["same_scene"] / mean["grey"], 3)
    mean["unrelated_minus_automatic"] = round(mean["unrelated"] - mean["automatic"], 3)
    return {"images": len(rows), "mean": mean, "per_image": rows}


def colour_with(colorizer: Colorizer, photo: Image.Image, reference: Image.Image) -> Image.Image:
    """The photo coloured from ``reference``; the automatic result when the reference is refused (no colour)."""
    try:
        return colorizer.colorize(photo, reference=reference)
    except ReferenceRequestError:
        return colorizer.colorize(photo)


def grid(colorizer: Colorizer, photos: list[Image.Image], *, cell: int = 160, seed: int = 0) -> Image.Image:
    """Rows of: grey target, same-scene reference, result, unrelated reference, result, the original."""
    rng = np.random.default_rng(seed)
    titles = ("grey input", "reference (other view)", "result", "unrelated reference", "result", "original")
    rows = []
    for i, photo in enumerate(photos):
        same = photo_view(photo, rng)
        other = unrelated_to(photos, i)
        tiles = [
            photo.convert("L").convert("RGB"),
            same,
            colour_with(colorizer, photo, same),
            other,
            colour_with(colorizer, photo, other),
            photo,
        ]
        rows.append([ImageOps.pad(t.convert("RGB"), (cell, cell), color=(255, 255, 255)) for t in tiles])
    header = 18
    canvas = Image.new("RGB", (cell * len(titles), header + cell * len(rows)), "white")
    draw = ImageDraw.Draw(canvas)
    for c, title in enumerate(titles):
        draw.text((c * cell + 4, 3), title, fill=(0, 0, 0))
    for r, tiles in enumerate(rows):
        for c, tile in enumerate(tiles):
            canvas.paste(tile, (c * cell, header + r * cell))
    return canvas


def _synthetic_photo(width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    r = 0.5 + 0.45 * np.sin(x / width * rng.uniform(3, 7) + rng.uniform(0, 3))
    g = 0.5 + 0.45 * np.cos(y / height * rng.uniform(3, 7) + rng.uniform(0, 3))
    b = 0.5 + 0.45 * np.sin((x + y) / (width + height) * rng.uniform(4, 9))
    return Image.fromarray((np.stack([r, g, b], axis=-1) * 255).astype(np.uint8), "RGB")


def time_it(colorizer: Colorizer, sizes: Mapping[str, tuple[int, int]], runs: int = 3) -> dict[str, float]:
    """Median milliseconds of one colourisation with a same-scene reference, per photo size."""
    out = {}
    for label, (w, h) in sizes.items():
        photo = _synthetic_photo(w, h, 1)
        reference = ImageOps.mirror(photo.resize((max(16, w // 2), max(16, h // 2))))
        colorizer.colorize(photo.resize((64, 64)), reference=reference.resize((64, 64)))  # warm-up
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            colorizer.colorize(photo, reference=reference)
            times.append(time.perf_counter() - started)
        out[label] = round(statistics.median(times) * 1000, 1)
    return out


def evaluate(
    images: Path,
    out: Path,
    *,
    weights_dir: Path | None = None,
    limit: int | None = None,
    grid_rows: int = 6,
    timings: bool = True,
) -> dict[str, Any]:
    """The measurement on a folder: writes report.json and grid.png into ``out``; returns the report."""
    colorizer = Colorizer.load(MODEL_ID, weights_dir, "cpu")
    files = list_photos(images, limit)
    if len(files) < 2:
        raise SystemExit(f"{images}: need at least two colour photos, found {len(files)}")
    photos = [Image.open(f).convert("RGB") for f in files]
    report = measure(colorizer, photos, names=[f.name for f in files])
    report["folder"] = str(images)
    report["fallback"] = (colorizer.meta.get("fallback") or {}).get("name") or "grey (no fallback head)"
    report["provenance"] = colorizer.meta.get("provenance")
    if timings:
        report["milliseconds"] = time_it(colorizer, {"256x256": (256, 256), "4000x3000 (12 MP)": (4000, 3000)})
        report["torch_threads"] = torch.get_num_threads()
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    grid(colorizer, photos[:grid_rows]).save(out / "grid.png")
    return report


def main_build(args: Any) -> int:
    path = build_exemplar(args.fallback, args.weights_dir, args.out)
    print(f"wrote {path} (fallback: {args.fallback or 'grey'})")
    return 0


def main_eval(args: Any) -> int:
    report = evaluate(
        Path(args.images), Path(args.out), weights_dir=args.weights_dir, limit=args.limit, timings=not args.no_timing
    )
    mean = report["mean"]
    print(f"{report['images']} photos from {args.images}, fallback: {report['fallback']}")
    for key in ("grey", "automatic", "same_scene", "unrelated"):
        print(f"  mean CIEDE2000 {key:>10}: {mean[key]:.3f}")
    print(f"  same scene / grey: {mean['same_scene_over_grey']:.3f} (target <= 0.5)")
    print(f"  unrelated - automatic: {mean['unrelated_minus_automatic']:+.3f} (target <= 0)")
    for label, ms in report.get("milliseconds", {}).items():
        print(f"  {label}: {ms:.0f} ms")
    return 0 if mean["same_scene_over_grey"] <= 0.5 and mean["unrelated_minus_automatic"] <= 0.05 else 1

