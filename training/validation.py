"""Validation during training: CIEDE2000 on held-out pictures, and the best weights so far (early stopping)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from colorizers.color import lab_to_rgb_t, rgb_to_lab_t
from colorizers.models.pretrained import PretrainedColorizer, confident_chroma
from training.metrics import delta_e00_t

TB_SAMPLES = 4  # validation pictures shown in TensorBoard
# (chroma floor, gain) pairs validation tries on models with a confidence decoding; (0, 1) is the raw output.
VALIDATION_DECODINGS = tuple((floor, gain) for floor in (0.0, 8.0, 16.0) for gain in (1.0, 1.3))


@torch.no_grad()
def evaluate(
    model: nn.Module, val: Mapping[str, torch.Tensor], device: torch.device, batch_size: int = 8
) -> tuple[dict[str, float], torch.Tensor]:
    """Mean CIEDE2000 of ``predict_ab`` on the validation pictures, as a viewer sees them (through sRGB).

    Returns ({"val_delta_e00", "val_ab_l1"}, the first predicted RGB pictures (B', 3, H, W) for logs). For a
    model with a confidence decoding, "val_delta_e00_confident" is the best ΔE00 over a small grid of chroma
    floors and gains: how good the model will be once calibrated, which is what early stopping compares.
    """
    was_training = model.training
    model.eval()
    decoding = isinstance(model, PretrainedColorizer)
    saved = (model.chroma_floor, model.chroma_gain) if decoding else None
    if decoding:
        model.chroma_floor, model.chroma_gain = 0.0, 1.0
    grid = VALIDATION_DECODINGS if decoding else ((0.0, 1.0),)
    de = {decode: [] for decode in grid}
    l1, shown = [], []
    for start in range(0, val["l"].shape[0], batch_size):
        l = val["l"][start : start + batch_size].to(device).float()  # (B, 1, H, W)
        ab_true = val["ab"][start : start + batch_size].to(device).float()  # (B, 2, H, W)
        truth = torch.cat([l, ab_true], dim=1)
        raw = model.predict_ab(l).float()  # (B, 2, H, W)
        for floor, gain in grid:
            ab = confident_chroma(raw, floor, gain)
            rgb = lab_to_rgb_t(torch.cat([l, ab], dim=1))  # (B, 3, H, W) in [0, 1]
            de[floor, gain].append(delta_e00_t(rgb_to_lab_t(rgb), truth).mean(dim=(-2, -1)))  # (B,)
            if (floor, gain) == (0.0, 1.0) and sum(s.shape[0] for s in shown) < TB_SAMPLES:
                shown.append(rgb.cpu())
        l1.append((raw - ab_true).abs().mean(dim=(1, 2, 3)))  # (B,)
    if saved is not None:
        model.chroma_floor, model.chroma_gain = saved
    model.train(was_training)
    means = {decode: float(torch.cat(values).mean()) for decode, values in de.items()}
    metrics = {"val_delta_e00": means[0.0, 1.0], "val_ab_l1": float(torch.cat(l1).mean())}
    if decoding:
        metrics["val_delta_e00_confident"] = min(means.values())
    return metrics, torch.cat(shown)[:TB_SAMPLES]


@torch.no_grad()
def grey_baseline(val: Mapping[str, torch.Tensor]) -> float:
    """Mean CIEDE2000 of the grey picture (ab = 0) against the truth: the number a model has to beat."""
    l = val["l"].float()
    lab_grey = rgb_to_lab_t(lab_to_rgb_t(torch.cat([l, torch.zeros_like(val["ab"])], dim=1)))
    return float(delta_e00_t(lab_grey, torch.cat([l, val["ab"].float()], dim=1)).mean())


class Validator:
    """A run's validations: every result (``history``, kept in checkpoints) and the best one with its weights.

    The export takes the best validated weights rather than the last, so a run that overfits late still ships
    its best state. Models with a confidence decoding are compared on "val_delta_e00_confident".
    """

    def __init__(self, val: Mapping[str, torch.Tensor]) -> None:
        self.val = val
        self.history: list[dict[str, Any]] = []
        self.best: tuple[dict[str, Any], dict[str, torch.Tensor]] | None = None  # best entry, its weights
        self.grey_delta_e00 = grey_baseline(val)

    def validate(
        self, model: nn.Module, device: torch.device, step: int, elapsed: float, *, eligible: bool = True
    ) -> tuple[dict[str, float], torch.Tensor]:
        """Evaluate ``model``, record the result (as the best so far only when ``eligible``); returns the metrics
        and the first predicted pictures."""
        metrics, shown = evaluate(model, self.val, device)
        metrics["val_delta_e00_grey"] = self.grey_delta_e00
        entry = {"step": step, "elapsed": round(elapsed, 1), **metrics}
        self.history.append(entry)
        key = "val_delta_e00_confident" if "val_delta_e00_confident" in metrics else "val_delta_e00"
        if eligible and (self.best is None or metrics[key] < self.best[0][key]):
            self.best = (entry, copy.deepcopy(model.state_dict()))
        return metrics, shown

    def final_metrics(self) -> dict[str, float]:
        """The best validation's metrics, else the last one's (none when the run never validated)."""
        entry = self.best[0] if self.best else (self.history[-1] if self.history else {})
        return {k: v for k, v in entry.items() if k.startswith("val_")}

    def sample_grid(self, predicted: torch.Tensor) -> torch.Tensor:
        """Rows grey / prediction / truth for the first validation pictures: (3, 3 H, n W) in [0, 1]."""
        n = predicted.shape[0]
        truth = self.val["rgb"][:n].float()
        grey = lab_to_rgb_t(torch.cat([self.val["l"][:n].float(), torch.zeros_like(self.val["ab"][:n])], dim=1))
        rows = [torch.cat(list(images), dim=-1) for images in (grey, predicted, truth)]  # each (3, H, n W)
        return torch.cat(rows, dim=-2)  # (3, 3 H, n W)
