"""Calibrate how sure a model is: chroma floor and gain (and its own knobs) fitted on held-out-package photos.

A model trained on a few hundred photos is confidently wrong on kinds of photos it has never seen. Dropping its
weak (unsure) chroma to grey and scaling the rest, with a floor and a gain fitted on photos from source packages
that training never saw (and choosing there how much of its class rebalancing the classification model undoes,
or the GAN's noise spread, and whether averaging with the mirrored picture pays), is the cheapest honest fix:
the fitted values go into the weights sidecar (``model_args``), so every serving path decodes with them.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np

from colorizers import color, weights
from colorizers.models.pretrained import PretrainedColorizer
from colorizers.pipeline import Colorizer
from colorizers.registry import get_spec
from training.evaluate.colorize import SEED
from training.evaluate.inputs import Photo, load_photos
from training.metrics import colourfulness, delta_e00

log = logging.getLogger(__name__)

GAINS = (0.6, 0.8, 1.0, 1.2, 1.4, 1.6, 1.7, 1.8, 1.9, 2.0, 2.2, 2.5, 3.0)
FLOORS = (0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0, 16.0, 20.0, 25.0)
# A model's own knobs of how sure it is, fitted with the floor and gain (every combination of those it has): how
# much of its training's class rebalancing a classification model undoes and the temperature of its annealed mean
# (higher: a flatter distribution, so an unsure pixel's mean colour falls towards grey), and the spread of a GAN's
# noise z (BigGAN's truncation: a narrower z trades diversity for fidelity; it stays above 0 so that a seed still
# picks among colours).
DECODING_KNOBS = {
    "prior_strength": (0.0, 0.2, 0.25, 0.3, 0.4, 0.5),
    "temperature": (0.3, 0.38),
    "z_std": (0.2, 0.4, 0.8),
}
SEARCH_STRIDE = 4  # the grid is searched on every 4th pixel of every 4th row of each photo
FINALISTS = 6  # the table's best settings (with and without the mirrored picture) then colourised and scored as served
FLIPS = (False, True)  # each setting without and with averaging over the mirrored picture
FLIP_GAIN = 0.99  # averaging with the mirrored picture doubles the model pass: it must lower ΔE00 by 1 %
GREY_MARGIN = 0.995  # "beats grey" means at least 0.5 % below it
MIN_CF_RATIO = 0.5  # colourful enough: at least half of the truth's colourfulness (Hasler and Süsstrunk)
CF_MARGIN = 0.01  # the choice must clear MIN_CF_RATIO by this much: other photos differ slightly from these


def mean_scores(
    rgbs: Sequence[np.ndarray], photos: Sequence[Photo], truth_labs: Sequence[np.ndarray], stride: int = 1
) -> dict[str, float]:
    """Mean ΔE00 and colourfulness ratio of colourised photos (uint8 RGB, each the ``stride``-subsampled photo)."""
    grid = np.s_[::stride, ::stride]
    errors = [delta_e00(t[grid], color.rgb_to_lab(rgb)).mean() for rgb, t in zip(rgbs, truth_labs, strict=True)]
    cf = np.mean([colourfulness(rgb) for rgb in rgbs]) / np.mean([p.colourfulness for p in photos])
    return {"delta_e00": float(np.mean(errors)), "cf_ratio": float(cf)}


def decode_table(
    outputs: Sequence[np.ndarray],
    photos: Sequence[Photo],
    truth_labs: Sequence[np.ndarray],
    *,
    floors: Sequence[float] = FLOORS,
    gains: Sequence[float] = GAINS,
    stride: int = 1,
) -> list[dict[str, float]]:
    """Mean ΔE00 and colourfulness ratio of the outputs (Lab) under every chroma floor and gain applied to them, on
    every ``stride``-th pixel of every ``stride``-th row (ΔE00 of a photo is a mean over its pixels: a regular
    subsample estimates it closely, at a fraction of the cost of CIEDE2000)."""
    rows = []
    for floor in floors:
        for gain in gains:
            rgbs = []
            for output in outputs:
                lab = output[::stride, ::stride].copy()
                chroma = np.hypot(lab[..., 1], lab[..., 2])
                lab[..., 1:] *= (gain * np.maximum(chroma - floor, 0) / np.maximum(chroma, 1e-6))[..., None]
                rgbs.append(np.clip(color.lab_to_rgb(lab) * 255 + 0.5, 0, 255).astype(np.uint8))
            rows.append({"floor": floor, "gain": gain, **mean_scores(rgbs, photos, truth_labs, stride)})
    return rows


def choose(candidates: list[dict[str, Any]], grey: float, min_cf_ratio: float = MIN_CF_RATIO) -> dict[str, Any]:
    """The decoding a user is best served by, in this order of preference:

    1. the lowest ΔE00 among those that beat grey and keep ``min_cf_ratio`` of the truth's colourfulness, both
       by a margin;
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
    mirrored = [c for c in candidates if c["flip"]]
    if not mirrored:
        return single
    both = choose(mirrored, grey)
    pays = both["delta_e00"] <= FLIP_GAIN * single["delta_e00"]
    return both if pays and both["cf_ratio"] >= min(single["cf_ratio"], MIN_CF_RATIO + CF_MARGIN) else single


def finalists(candidates: list[dict[str, Any]], grey: float, count: int = FINALISTS) -> list[dict[str, Any]]:
    """The table's best settings, with and without the mirrored picture: the ``count`` lowest ΔE00 that keep half of
    the truth's colourfulness, and what :func:`choose` takes (the table applies floor and gain to the final colours,
    the model at its working size, so the two differ a little)."""
    picked: list[dict[str, Any]] = []
    for flip in FLIPS:
        group = [c for c in candidates if c["flip"] is flip]
        if not group:
            continue
        colourful = sorted((c for c in group if c["cf_ratio"] >= MIN_CF_RATIO), key=lambda c: c["delta_e00"])
        for candidate in colourful[:count] + [choose(group, grey)]:
            if candidate not in picked:
                picked.append(candidate)
    return picked


def knob_grid(model: PretrainedColorizer) -> list[dict[str, float]]:
    """Every combination of the values of the decoding knobs the model has ([{}] when it has none)."""
    names = [name for name in DECODING_KNOBS if hasattr(model, name)]
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*(DECODING_KNOBS[n] for n in names))]


def colorize_all(colorizer: Colorizer, photos: Sequence[Photo], setting: dict[str, Any]) -> list[np.ndarray]:
    """Every photo colourised (uint8 RGB) with the model decoding as ``setting`` says (floor, gain, knobs, flip)."""
    model = cast(PretrainedColorizer, colorizer.model)
    model.chroma_floor, model.chroma_gain, model.flip_average = setting["floor"], setting["gain"], setting["flip"]
    for knob, value in setting["knobs"].items():
        setattr(model, knob, value)
    seed = SEED if colorizer.spec.supports_seed else None
    return [np.asarray(colorizer.colorize(p.grey, seed=seed).convert("RGB")) for p in photos]


def search(
    name: str, colorizer: Colorizer, photos: Sequence[Photo], truth_labs: Sequence[np.ndarray]
) -> list[dict[str, Any]]:
    """The table of every knob setting, mirrored or not, under every floor and gain (subsampled figures)."""
    candidates = []
    for flip in FLIPS:
        for knobs in knob_grid(cast(PretrainedColorizer, colorizer.model)):
            rgbs = colorize_all(colorizer, photos, {"floor": 0.0, "gain": 1.0, "knobs": knobs, "flip": flip})
            table = decode_table([color.rgb_to_lab(rgb) for rgb in rgbs], photos, truth_labs, stride=SEARCH_STRIDE)
            candidates += [{**row, "knobs": knobs, "flip": flip} for row in table]
            lowest = min(r["delta_e00"] for r in table)
            log.info("%s %s%s: lowest ΔE00 %.3f", name, knobs, " mirrored" if flip else "", lowest)
    return candidates


def calibrate(
    name: str,
    images: str | os.PathLike[str],
    weights_dir: str | os.PathLike[str] | None = None,
    *,
    write: bool = True,
) -> dict[str, Any]:
    """Fit ``chroma_floor``, ``chroma_gain`` (and the model's knobs, if any) on the photos in ``images``; returns
    the record. The table is searched on subsampled photos; its finalists, the ``chosen`` setting among them and
    the ``plain`` decoding (the model's knobs, no floor or gain) are scored on every pixel, as the model serves."""
    colorizer = Colorizer.load(name, weights_dir)
    model = colorizer.model
    if not isinstance(model, PretrainedColorizer):
        raise ValueError(f"{name} has no confidence decoding to calibrate (only models on the pretrained encoder)")
    photos = load_photos(images)
    truth_labs = [color.rgb_to_lab(p.rgb) for p in photos]
    greys = [np.asarray(p.grey.convert("RGB")) for p in photos]
    grey = mean_scores(greys, photos, truth_labs)["delta_e00"]
    plain = {"floor": 0.0, "gain": 1.0, "knobs": {k: getattr(model, k) for k in knob_grid(model)[0]}, "flip": False}

    def served(setting: dict[str, Any]) -> dict[str, Any]:
        return {**setting, **mean_scores(colorize_all(colorizer, photos, setting), photos, truth_labs)}

    best = choose_with_flip([served(c) for c in finalists(search(name, colorizer, photos, truth_labs), grey)], grey)
    record = {"images": str(images), "photos": len(photos), "grey_delta_e00": grey, "chosen": best}
    record["plain"] = served(plain)
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
    meta["model_args"].update(best["knobs"])
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
            + "".join(f", {knob} {value:g}" for knob, value in best["knobs"].items())
            + (", averaged with the mirrored picture" if best["flip"] else "")
            + f": ΔE00 {plain['delta_e00']:.2f} -> {best['delta_e00']:.2f} (grey {record['grey_delta_e00']:.2f}), "
            f"CF ratio {plain['cf_ratio']:.2f} -> {best['cf_ratio']:.2f}"
        )
    return 0
