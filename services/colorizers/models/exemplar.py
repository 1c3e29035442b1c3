"""Colour from a reference photo (after He et al., "Deep Exemplar-based Colorization", SIGGRAPH 2018).

The grey target and the grey version of a colour reference go through the same frozen ImageNet encoder. Their
features (strides 8, 16 and 32, each centred and L2-normalised, brought to stride 8) give a dense correspondence:
every target cell takes a softmax-weighted mix of the reference's chroma (``temperature``). How sure the match is
comes from the best cosine similarity of the cell (a soft threshold: ``threshold``, ``slope``) and from whether
the matched reference cells have the target cell's lightness. Where the match is sure the reference's chroma is
carried over; elsewhere the automatic ``fallback`` head (an existing compact model, weights copied in by
``python -m training build-exemplar``) colours the photo, or grey when the model has no fallback head. A
reference that has no colour, or none that matches, therefore gives the automatic result. The coarse chroma and
confidence are brought to full resolution by an upsampling guided by the target's lightness.

The three gate scalars are the only trained part (``training.exemplar``: pairs made from the training photos
themselves, another crop, scale and flip of the same photo as the reference).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from colorizers.models.pretrained import PretrainedColorizer, load_encoder_weights, pad_to_multiple, provided_features
from colorizers.registry import create_model, register_model

PAPER = (
    'M. He, D. Chen, J. Liao, P. V. Sander, L. Yuan, "Deep Exemplar-based Colorization" '
    "(ACM Transactions on Graphics 37(4), SIGGRAPH 2018)"
)
MATCH_STRIDE = 8  # the correspondence runs on the stride-8 grid (32 x 32 cells at 256 px)
GREY_REFERENCE_CHROMA = 3.0  # mean chroma (Lab units) below which a reference counts as having no colour
LIGHTNESS_SIGMA = 20.0  # matched reference cells whose lightness differs by this much count ~60 % as a match
GUIDE_SIGMA = 8.0  # lightness sigma of the guided upsampling (Lab L units)

# The automatic head of the tiny variant (tests): the tutorial's own small network, no second encoder.
TINY_FALLBACK_ARGS = {"width": 4, "embed_dim": 16, "embed_size": 32, "embed_width": 4}


@register_model(
    "exemplar",
    family="exemplar",
    description="Colour from a reference photo of the same scene or person: dense feature correspondence on the "
    "frozen encoder carries the reference's colours where the match is sure, an automatic head colours the rest.",
    variants={
        "tiny": {"backbone": "efficientnet-lite0", "fallback": "wallner-full", "fallback_args": TINY_FALLBACK_ARGS},
        "compact": {"backbone": "efficientnet-lite0"},
    },
    working_size=256,
    supports_reference=True,
    needs_reference=True,
    paper=PAPER,
)
class ExemplarColorizer(PretrainedColorizer):
    """Reference-based colouriser; ``predict_ab(l, reference=lab)`` with the reference as Lab (B, 3, Hr, Wr).

    Without a reference (``reference=None``), or for batch elements whose reference has no colour, the result is
    the fallback's (the automatic prediction; grey without a fallback head).
    """

    def __init__(
        self,
        backbone: str = "efficientnet-lite0",
        fallback: str | None = None,
        fallback_args: Mapping[str, Any] | None = None,
        scales: Sequence[int] = (8, 16, 32),
        temperature: float = 0.01,
        threshold: float = 0.4,
        slope: float = 0.05,
        **common: Any,
    ) -> None:
        super().__init__(backbone, **common)
        self.scales = tuple(int(s) for s in scales)
        # The gate: the only trained parameters (a few scalars), initialised from the calibration.
        self.log_temperature = nn.Parameter(torch.tensor(math.log(temperature)))
        self.threshold = nn.Parameter(torch.tensor(float(threshold)))
        self.log_slope = nn.Parameter(torch.tensor(math.log(slope)))
        self.fallback: nn.Module | None = None
        if fallback:
            head = create_model(fallback, None, **dict(fallback_args or {}))
            if isinstance(head, PretrainedColorizer):
                if head.encoder.net.name != backbone:
                    raise ValueError(f"the fallback {fallback} stands on {head.encoder.net.name}, not on {backbone}")
                del head.encoder  # the head shares this model's encoder: one encoder pass, stored once
                object.__setattr__(head, "encoder", self.encoder)  # a plain reference, not a submodule
            self.fallback = head

    def load_untrained(self) -> None:
        """Without trained weights the correspondence still works: it only needs the published encoder."""
        load_encoder_weights(self)

    # --- inference ------------------------------------------------------------------------------------------------

    def predict_ab(
        self,
        l: torch.Tensor,
        *,
        hint_ab: torch.Tensor | None = None,
        hint_mask: torch.Tensor | None = None,
        seed: int | None = None,
        reference: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """L (B, 1, H, W) in [0, 100] and the reference as Lab (B, 3, Hr, Wr) -> ab (B, 2, H, W)."""
        return self.predict_with_confidence(l, reference)[0]

    def predict_with_confidence(
        self, l: torch.Tensor, reference: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """ab (B, 2, H, W) and the confidence (B, 1, H, W) in [0, 1] with which the reference's chroma was used."""
        h, w = l.shape[-2:]
        padded = pad_to_multiple(l.float())
        features = self.encoder(padded)
        automatic = self._automatic(padded, features)  # (B, 2, H', W')
        if reference is None:
            return automatic[..., :h, :w], torch.zeros_like(l)
        carried, confidence = self._carry(padded, features, reference.float())  # (B, 2, H', W'), (B, 1, H', W')
        ab = confidence * carried + (1.0 - confidence) * automatic
        return ab[..., :h, :w], confidence[..., :h, :w]

    def _automatic(self, l: torch.Tensor, features: dict[int | str, torch.Tensor]) -> torch.Tensor:
        if self.fallback is None:
            return torch.zeros(l.shape[0], 2, *l.shape[-2:], device=l.device)
        with provided_features(self.fallback, features):  # the shared encoder returns these, no second pass
            return cast(PretrainedColorizer, self.fallback).predict_ab(l).float()

    def _carry(
        self, l: torch.Tensor, features: dict[int | str, torch.Tensor], reference: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The reference's chroma warped onto the target and the per-pixel confidence, both at the target's size."""
        ref = pad_to_multiple(reference)
        ref_features = self._features_without_cache(ref[:, :1])
        grid = (l.shape[-2] // MATCH_STRIDE, l.shape[-1] // MATCH_STRIDE)
        ref_grid = (ref.shape[-2] // MATCH_STRIDE, ref.shape[-1] // MATCH_STRIDE)
        target, source = self._descriptors(features, ref_features, grid, ref_grid)  # (B, C, N), (B, C, M)
        similarity = torch.einsum("bcn,bcm->bnm", target, source)  # (B, N, M) cosine similarities
        weights = torch.softmax(similarity / self.log_temperature.exp(), dim=-1)  # (B, N, M)
        ref_lab = F.adaptive_avg_pool2d(ref, ref_grid).flatten(2)  # (B, 3, M) mean Lab of each reference cell
        warped = torch.einsum("bnm,bcm->bcn", weights, ref_lab)  # (B, 3, N)
        best = similarity.amax(dim=-1)  # (B, N)
        target_l = F.adaptive_avg_pool2d(l, grid).flatten(2)[:, 0]  # (B, N)
        agree = torch.exp(-0.5 * ((warped[:, 0] - target_l) / LIGHTNESS_SIGMA) ** 2)  # (B, N)
        sure = torch.sigmoid((best - self.threshold) / self.log_slope.exp()) * agree  # (B, N)
        colourful = reference_has_colour(reference).view(-1, 1)  # (B, 1): a grey reference gives no colour
        confidence = (sure * colourful).view(-1, 1, *grid)  # (B, 1, h, w)
        coarse_ab = warped[:, 1:].reshape(-1, 2, *grid)  # (B, 2, h, w)
        coarse_l = target_l.view(-1, 1, *grid)
        fine = guided_upsample(torch.cat([coarse_ab, confidence], dim=1), coarse_l, l)  # (B, 3, H, W)
        return fine[:, :2], fine[:, 2:].clamp(0.0, 1.0)

    def _features_without_cache(self, l: torch.Tensor) -> dict[int | str, torch.Tensor]:
        """Encoder features of another picture than the batch's own (the training cache holds only the target's)."""
        provided, self.encoder.provided = self.encoder.provided, None
        try:
            return self.encoder(l)
        finally:
            self.encoder.provided = provided

    def _descriptors(
        self,
        target: dict[int | str, torch.Tensor],
        source: dict[int | str, torch.Tensor],
        grid: tuple[int, int],
        ref_grid: tuple[int, int],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-cell descriptors (B, C, N) and (B, C, M): each scale centred on the pair's mean, L2-normalised."""
        parts_t, parts_s = [], []
        for stride in self.scales:
            t = _to_grid(target[stride].float(), grid)  # (B, c, N)
            s = _to_grid(source[stride].float(), ref_grid)  # (B, c, M)
            mean = torch.cat([t, s], dim=2).mean(dim=2, keepdim=True)  # (B, c, 1)
            parts_t.append(F.normalize(t - mean, dim=1))
            parts_s.append(F.normalize(s - mean, dim=1))
        return F.normalize(torch.cat(parts_t, dim=1), dim=1), F.normalize(torch.cat(parts_s, dim=1), dim=1)

    def native_ab(self, l, hint_ab, hint_mask, seed):
        return self.predict_ab(l)

    def forward(self, l: torch.Tensor, reference: torch.Tensor | None = None) -> torch.Tensor:
        return self.predict_ab(l, reference=reference)


def _to_grid(x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """A feature map (B, c, h, w) resampled to ``grid`` and flattened: (B, c, N)."""
    if x.shape[-2:] != grid:
        x = F.interpolate(x, size=grid, mode="bilinear", align_corners=False)
    return x.flatten(2)


def reference_has_colour(reference: torch.Tensor, floor: float = GREY_REFERENCE_CHROMA) -> torch.Tensor:
    """(B,) in [0, 1]: 0 for a reference with (almost) no chroma, 1 from twice ``floor`` on (Lab (B, 3, H, W))."""
    chroma = torch.linalg.vector_norm(reference[:, 1:].float(), dim=1).mean(dim=(1, 2))  # (B,)
    return ((chroma - floor) / floor).clamp(0.0, 1.0)


def guided_upsample(coarse: torch.Tensor, coarse_l: torch.Tensor, l: torch.Tensor) -> torch.Tensor:
    """Coarse maps (B, C, h, w) to the size of ``l`` (B, 1, H, W), each pixel mixing the 3 x 3 nearby cells by how
    close their mean lightness ``coarse_l`` (B, 1, h, w) is to its own (a joint bilateral upsampling)."""
    b, c, h, w = coarse.shape
    stack = torch.cat([coarse, coarse_l], dim=1)  # (B, C + 1, h, w)
    cells = F.unfold(F.pad(stack, (1, 1, 1, 1), mode="replicate"), 3)  # (B, (C + 1) * 9, h * w)
    cells = F.interpolate(cells.view(b, -1, h, w), size=l.shape[-2:], mode="bilinear", align_corners=False)
    cells = cells.view(b, c + 1, 9, *l.shape[-2:])  # (B, C + 1, 9, H, W)
    weight = torch.exp(-0.5 * ((cells[:, c:] - l[:, :, None]) / GUIDE_SIGMA) ** 2) + 1e-4  # (B, 1, 9, H, W)
    return (cells[:, :c] * weight).sum(dim=2) / weight.sum(dim=2)  # (B, C, H, W)
