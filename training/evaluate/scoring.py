"""Scores of a colourised photo against its truth, their means over photos, and the acceptance verdicts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from colorizers import color
from training.evaluate.inputs import Photo
from training.metrics import colourfulness, delta_e00, psnr

BASELINE = "grey (baseline)"
# Acceptance bar: mean dE00 at least 10 % below the grey baseline, and colourfulness at least half the truth's.
ACCEPT_DELTA_E_BELOW_BASELINE = 0.10
ACCEPT_CF_RATIO = 0.50
# Truth Lab images are kept between models up to this many pixels in all (12 bytes a pixel), else recomputed.
_CACHE_PIXELS = 40_000_000
_MEAN_KEYS = ("delta_e00", "psnr", "colourfulness", "colourfulness_truth", "delta_cf", "latency_ms")


def score(
    truth: np.ndarray, output: np.ndarray, truth_lab: np.ndarray | None = None, truth_cf: float | None = None
) -> dict[str, Any]:
    """Scores of one output (H, W, 3) uint8 against the truth (H, W, 3) uint8: a dict of floats."""
    if truth_lab is None:
        truth_lab = color.rgb_to_lab(truth)  # (H, W, 3)
    cf_truth = colourfulness(truth) if truth_cf is None else truth_cf
    cf = colourfulness(output)
    return {
        "delta_e00": float(delta_e00(truth_lab, color.rgb_to_lab(output)).mean()),
        "psnr": psnr(truth, output),
        "colourfulness": cf,
        "colourfulness_truth": cf_truth,
        "delta_cf": cf - cf_truth,
        "cf_ratio": cf / cf_truth if cf_truth > 0 else None,
    }


def summarise(per_image: list[dict[str, Any]]) -> dict[str, Any]:
    """Means over images: dE00 and PSNR per image first, then over images; CF ratio = mean CF / mean truth CF."""
    means: dict[str, Any] = {}
    for key in _MEAN_KEYS:
        values = [row[key] for row in per_image if row.get(key) is not None]
        means[key] = float(np.mean(values)) if values else None
    latencies = [row["latency_ms"] for row in per_image if row.get("latency_ms") is not None]
    means["latency_ms_median"] = float(np.median(latencies)) if latencies else None
    cf_truth = means["colourfulness_truth"]
    means["cf_ratio"] = means["colourfulness"] / cf_truth if cf_truth else None
    means["images"] = len(per_image)
    return means


class TruthCache:
    """Lab of each truth photo, computed once when the photos are small enough to keep, else on demand."""

    def __init__(self, photos: Sequence[Photo]):
        self.photos = photos
        self.keep = sum(p.rgb.shape[0] * p.rgb.shape[1] for p in photos) <= _CACHE_PIXELS
        self.labs: dict[int, np.ndarray] = {}

    def lab(self, index: int) -> np.ndarray:
        """CIE Lab (H, W, 3) of photo ``index``: float32 when kept, float64 when computed for this call only."""
        if index in self.labs:
            return self.labs[index]
        lab = color.rgb_to_lab(self.photos[index].rgb)  # (H, W, 3) float64
        if self.keep:
            lab = lab.astype(np.float32)
            self.labs[index] = lab
        return lab


def acceptance(report: dict[str, Any]) -> dict[str, Any]:
    """Pass/fail per model: mean dE00 >= 10 % below the grey baseline and CF ratio >= 0.5."""
    base = report["models"][BASELINE]["mean"]["delta_e00"]
    bar = (1.0 - ACCEPT_DELTA_E_BELOW_BASELINE) * base
    verdicts = {}
    for name, entry in report["models"].items():
        if entry["baseline"]:
            continue
        de, ratio = entry["mean"]["delta_e00"], entry["mean"]["cf_ratio"]
        de_ok = de <= bar
        cf_ok = ratio is not None and ratio >= ACCEPT_CF_RATIO
        verdicts[name] = {
            "delta_e00_below_baseline": (base - de) / base if base else None,
            "delta_e00_ok": de_ok,
            "cf_ratio": ratio,
            "cf_ok": cf_ok,
            "passed": de_ok and cf_ok,
        }
    return {
        "rule": f"mean ΔE00 is at least {ACCEPT_DELTA_E_BELOW_BASELINE:.0%} below the grey baseline's "
        f"(≤ {bar:.3f}) and its colourfulness at least {ACCEPT_CF_RATIO:.0%} of the ground truth's",
        "baseline_delta_e00": base,
        "delta_e00_bar": bar,
        "models": verdicts,
    }


def ranked(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Report entries, baseline included, from the lowest mean dE00 to the highest."""
    return sorted(report["models"].values(), key=lambda e: e["mean"]["delta_e00"])
