"""Calibrate how sure a model is: chroma floor and gain (and its own knob) fitted on held-out-package photos.

A model trained on a few hundred photos is confidently wrong on kinds of photos it has never seen. Dropping its
weak (unsure) chroma to grey and scaling the rest, with a floor and a gain fitted on photos from source packages
that training never saw (and choosing there how much of its class rebalancing the classification model undoes,
or the GAN's noise spread, and whether averaging with the mirrored picture pays), is the cheapest honest fix:
the fitted values go into the weights sidecar (``model_args``), so every serving path decodes with them.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from colorizers import color, weights
from colorizers.models.pretrained import PretrainedColorizer
from colorizers.pipeline import Colorizer
from colorizers.registry import get_spec
from training.evaluate.colorize import SEED
from training.evaluate.inputs import Photo, load_photos
from training.evaluate.scoring import score

log = logging.getLogger(__name__)

GAINS = (0.6, 0.8, 1.0, 1.2, 1.4, 1.6, 1.8, 2.0, 2.2, 2.5, 3.0)
FLOORS = (0.0, 2.0, 4.0, 6.0, 8.0, 12.0, 16.0, 20.0, 25.0)
# A model's own knob of how sure it is, fitted with the floor and gain: how much of its training's class
# rebalancing a classification model undoes (its annealed-mean temperature stays the paper's 0.38), and the
# spread of a GAN's noise z (BigGAN's truncation: a narrower z trades diversity for fidelity; it stays above 0
# so that a seed still picks among colours).
DECODING_KNOBS = {"prior_strength": (0.0, 0.2, 0.3, 0.4, 0.5), "z_std": (0.2, 0.4, 0.8)}
FLIP_GAIN = 0.99  # averaging with the mirrored picture doubles the model pass: it must lower ΔE00 by 1 %
GREY_MARGIN = 0.995  # "beats grey" means at least 0.5 % below it
MIN_CF_RATIO = 0.5  # colourful enough: at least half of the truth's colourfulness (Hasler and Süsstrunk)
CF_MARGIN = 0.01  # the fit must clear MIN_CF_RATIO by this much: served photos differ slightly from the fit's


def decode_table(
    outputs: Sequence[np.ndarray], photos: Sequence[Photo], truth_labs: Sequence[np.ndarray]
) -> list[dict[str, float]]:
    """Mean ΔE00 and colourfulness ratio of the outputs (Lab) under every chroma floor and gain."""
    rows = []
    for floor in FLOORS:
        for gain in GAINS:
            scores = []
            for output, photo, truth_lab in zip(outputs, photos, truth_labs, strict=True):
                lab = output.copy()
                chroma = np.hypot(lab[..., 1], lab[..., 2])
                lab[..., 1:] *= (gain * np.maximum(chroma - floor, 0) / np.maximum(chroma, 1e-6))[..., None]
                rgb = np.clip(color.lab_to_rgb(lab) * 255 + 0.5, 0, 255).astype(np.uint8)
                scores.append(score(photo.rgb, rgb, truth_lab, photo.colourfulness))
            cf = np.mean([s["colourfulness"] for s in scores]) / np.mean([s["colourfulness_truth"] for s in scores])
            de = float(np.mean([s["delta_e00"] for s in scores]))
            rows.append({"floor": floor, "gain": gain, "delta_e00": de, "cf_ratio": float(cf)})
    return rows


def choose(candidates: list[dict[str, Any]], grey: float, min_cf_ratio: float = MIN_CF_RATIO) -> dict[str, Any]:
    """The decoding a user is best served by, in this order of preference:

    1. the lowest ΔE00 among those that beat grey and keep ``min_cf_ratio`` of the truth's colourfulness, both
       by a margin (the fit is made on the final colours, the model applies it at its working size);
    2. else the most colourful among those that beat grey by at least 1 %;
    3. else the lowest ΔE00 (the model has too little to offer on unfamiliar photos).
    """
    good = [c for c in candidates if c["delta_e00"] <= GREY_MARGIN * grey and c["cf_ratio"] >= min_cf_ratio + CF_MARGIN]
    if good:
        return min(good, key=lambda c: c["delta_e00"])
    safe = [c for c in candidates if c["delta_e00"] <= 0.99 * grey]
    if safe:
        return max(safe, key=lambda c: c["cf_ratio"])
    return min(candidates, key=lambda c: c["delta_e00"])


def choose_with_flip(candidates: list[dict[str, Any]], grey: float) -> dict[str, Any]:
    """:func:`choose`, taking a decoding with the mirrored picture only where it lowers ΔE00 by ``FLIP_GAIN`` at no
    loss of colourfulness below the bar."""
    single = choose([c for c in candidates if not c["flip"]], grey)
    both = choose([c for c in candidates if c["flip"]], grey)
    pays = both["delta_e00"] <= FLIP_GAIN * single["delta_e00"]
    return both if pays and both["cf_ratio"] >= min(single["cf_ratio"], MIN_CF_RATIO + CF_MARGIN) else single


def calibrate(
    name: str,
    images: str | os.PathLike[str],
    weights_dir: str | os.PathLike[str] | None = None,
    *,
    write: bool = True,
) -> dict[str, Any]:
    """Fit ``chroma_floor``, ``chroma_gain`` (and the model's knob, if any) on the photos in ``images``; returns the
    record."""
    colorizer = Colorizer.load(name, weights_dir)
    model = colorizer.model
    if not isinstance(model, PretrainedColorizer):
        raise ValueError(f"{name} has no confidence decoding to calibrate (only models on the pretrained encoder)")
    photos = load_photos(images)
    truth_labs = [color.rgb_to_lab(p.rgb) for p in photos]
    grey = float(
        np.mean(
            [
                score(p.rgb, np.asarray(p.grey.convert("RGB")), t)["delta_e00"]
                for p, t in zip(photos, truth_labs, strict=True)
            ]
        )
    )
    seed = SEED if colorizer.spec.supports_seed else None
    knob = next((name for name in DECODING_KNOBS if hasattr(model, name)), None)
    before = {"floor": model.chroma_floor, "gain": model.chroma_gain, "knob": knob and getattr(model, knob)}
    model.chroma_floor, model.chroma_gain = 0.0, 1.0
    candidates = []
    for flip in (False, True):
        model.flip_average = flip
        for value in DECODING_KNOBS[knob] if knob else (None,):
            if knob:
                setattr(model, knob, value)
            outputs = [
                color.rgb_to_lab(np.asarray(colorizer.colorize(p.grey, seed=seed).convert("RGB"))) for p in photos
            ]
            table = decode_table(outputs, photos, truth_labs)
            candidates += [{**row, "knob": knob, "value": value, "flip": flip} for row in table]
    best = choose_with_flip(candidates, grey)
    plain = min(candidates, key=lambda c: (c["flip"], c["floor"] != 0, c["gain"] != 1.0, c["value"] != before["knob"]))
    record = {"images": str(images), "photos": len(photos), "grey_delta_e00": grey, "chosen": best, "plain": plain}
    log.info("%s: %s (grey %.2f)", name, best, grey)
    if write:
        write_calibration(name, weights_dir, best, record)
    return record


def write_calibration(
    name: str, weights_dir: str | os.PathLike[str] | None, best: dict[str, Any], record: dict[str, Any]
) -> None:
    """Put the fitted decoding into the sidecar's ``model_args`` and the evidence into ``calibration``."""
    path = weights.weights_dir(weights_dir) / f"{name}.json"
    meta = json.loads(path.read_text())
    meta["model_args"]["chroma_gain"] = best["gain"]
    meta["model_args"]["chroma_floor"] = best["floor"]
    meta["model_args"]["flip_average"] = best["flip"]
    if best["knob"]:
        meta["model_args"][best["knob"]] = best["value"]
    meta["calibration"] = {k: v for k, v in record.items() if k != "candidates"}
    path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def main(args: Any) -> int:
    names = args.models.split(",")
    if args.models == "all":
        names = [
            n
            for n, meta in weights.available(args.weights_dir).items()
            if meta.get("backbone") and not get_spec(meta["architecture"]).needs_reference  # automatic models
        ]
    for name in names:
        record = calibrate(name, Path(args.images), args.weights_dir, write=not args.dry_run)
        best, plain = record["chosen"], record["plain"]
        print(
            f"{name}: floor {best['floor']:g}, gain {best['gain']:g}"
            + (f", {best['knob']} {best['value']:g}" if best["knob"] else "")
            + (", averaged with the mirrored picture" if best["flip"] else "")
            + f": ΔE00 {plain['delta_e00']:.2f} -> {best['delta_e00']:.2f} (grey {record['grey_delta_e00']:.2f}), "
            f"CF ratio {plain['cf_ratio']:.2f} -> {best['cf_ratio']:.2f}"
        )
    return 0
