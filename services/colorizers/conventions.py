"""Conventions: how a model's weights expect their input made and their output decoded, as the sidecar records.

Weights trained here follow the project's pipeline, and their sidecars carry no ``conventions`` block. Weights
imported from their authors' checkpoints were trained with their authors' code, and reproduce its results only
when fed and decoded the same way; the importer writes what they need into the sidecar, and every serving path
(``Colorizer``, the TorchServe handler, the gateway) reads it from there:

``temperature``
    Annealed-mean temperature T of a 313-bin decoder (``zhang-eccv16``). The authors' Caffe network scaled the
    logits by 2.606 (= 1 / 0.38) in a separate layer before its softmax; their PyTorch port has no such layer,
    so the factor is folded into the released weights and they are decoded with T = 1 (the plain expectation).
``hint_mask_offset``
    What is subtracted from the hint mask before it enters a hint network (``zhang-siggraph17``): the project
    trains with 0.5 (the authors' training code), the authors' released, Caffe-converted weights read the mask
    as given (0: no hint, 1: hint).
``preprocess``, ``render_factor``, ``merge``
    DeOldify's own pipeline: the photo stretched to a square of ``16 x render_factor`` px (Pillow bilinear), its
    Rec.601 luma grey (Pillow's ``"LA"``) fed as RGB; the generator's RGB, truncated to 8 bits, stretched back to
    the photo's size (bilinear) and merged in YCbCr: the photo's own Y, the result's Cb and Cr. The project's
    pipeline instead feeds a CIE-L grey made by bicubic resampling and merges in Lab.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from torch import nn

LAB = "lab"  # the project's own pipeline: CIE-L grey in (bicubic), model ab merged on the photo's L
DEOLDIFY = "deoldify"  # Rec.601 luma grey of a bilinear square at the render size
YCBCR = "ycbcr"  # the result's Cb, Cr on the photo's Y
PREPROCESS = (LAB, DEOLDIFY)
MERGES = (LAB, YCBCR)
RENDER_BASE = 16  # DeOldify's render size is render_factor x 16 px
DEOLDIFY_RENDER_FACTOR = 35  # its default: 560 px


class ConventionError(ValueError):
    """A ``conventions`` block that cannot be used, with the reason."""


@dataclass(frozen=True)
class Conventions:
    """A sidecar's ``conventions`` block; the defaults are the project's own pipeline."""

    temperature: float | None = None  # None: the model's own (its model_args)
    hint_mask_offset: float | None = None  # None: the model's own
    preprocess: str = LAB
    render_factor: int | None = None
    merge: str = LAB

    def __post_init__(self) -> None:
        if self.preprocess not in PREPROCESS:
            raise ConventionError(f"preprocess must be one of {', '.join(PREPROCESS)}, got {self.preprocess!r}")
        if self.merge not in MERGES:
            raise ConventionError(f"merge must be one of {', '.join(MERGES)}, got {self.merge!r}")
        if self.temperature is not None and not float(self.temperature) > 0:
            raise ConventionError(f"temperature must be positive, got {self.temperature!r}")
        if self.render_factor is not None and (
            isinstance(self.render_factor, bool) or not isinstance(self.render_factor, int) or self.render_factor < 1
        ):
            raise ConventionError(f"render_factor must be a positive whole number, got {self.render_factor!r}")
        if self.render_factor is not None and self.preprocess != DEOLDIFY:
            raise ConventionError("render_factor only applies with preprocess 'deoldify'")

    @classmethod
    def from_dict(cls, block: Mapping[str, Any] | None) -> Conventions:
        block = dict(block or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(block) - known)
        if unknown:
            raise ConventionError(f"unknown conventions {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**block)

    @classmethod
    def of(cls, sidecar: Mapping[str, Any] | None) -> Conventions:
        """The conventions a weights sidecar records (none: the project's pipeline)."""
        return cls.from_dict((sidecar or {}).get("conventions"))

    def as_dict(self) -> dict[str, Any]:
        """The block as written in a sidecar: only what differs from the project's pipeline."""
        default = Conventions()
        return {k: v for k, v in asdict(self).items() if v != getattr(default, k)}

    @property
    def deoldify(self) -> bool:
        return self.preprocess == DEOLDIFY

    def model_args(self) -> dict[str, Any]:
        """The conventions that are constructor arguments of the model (so the weights load right anywhere)."""
        pairs = (("temperature", self.temperature), ("hint_mask_offset", self.hint_mask_offset))
        return {k: v for k, v in pairs if v is not None}

    def apply(self, model: nn.Module) -> None:
        """Set the model-side conventions on a built model; a convention the model has no use for is an error."""
        for name, value in self.model_args().items():
            if not hasattr(model, name):
                raise ConventionError(f"{type(model).__name__} has no {name} to set (conventions {self.as_dict()})")
            setattr(model, name, float(value))

    def default_size(self, fallback: int) -> int:
        """The working size when a request names none: the render size for DeOldify's pipeline."""
        if self.deoldify:
            return RENDER_BASE * (self.render_factor or DEOLDIFY_RENDER_FACTOR)
        return fallback

    def model_size(self, size: int | None, fallback: int) -> int:
        """The working size the model sees for a request's ``size`` (None: the default).

        With DeOldify's pipeline ``size`` is the render size, rounded down to a multiple of 16 (render_factor =
        size // 16), as DeOldify renders only at multiples of 16.
        """
        if size is None:
            return self.default_size(fallback)
        if self.deoldify:
            return max(RENDER_BASE, size // RENDER_BASE * RENDER_BASE)
        return size


# What the authors' released checkpoints need, by architecture (written into the "-x" sidecars on import).
PUBLISHED: dict[str, Conventions] = {
    "zhang-eccv16": Conventions(temperature=1.0),
    "zhang-siggraph17": Conventions(hint_mask_offset=0.0),
    "deoldify-artistic": Conventions(preprocess=DEOLDIFY, render_factor=DEOLDIFY_RENDER_FACTOR, merge=YCBCR),
    "deoldify-stable": Conventions(preprocess=DEOLDIFY, render_factor=DEOLDIFY_RENDER_FACTOR, merge=YCBCR),
}


def working_size(sidecar: Mapping[str, Any], fallback: int) -> int:
    """A model's default working size: its conventions' render size, else ``fallback`` (the sidecar's or family's)."""
    return Conventions.of(sidecar).default_size(fallback)
