"""The inference contract every colourisation model implements (native forward + predict_ab)."""

from __future__ import annotations

import torch
from torch import nn


class ColorizationModel(nn.Module):
    """Base class. Holds no parameters, so subclasses keep published state_dict layouts exactly.

    ``forward`` is the model's native output (logits, ab, RGB, ...) used by training losses.
    ``predict_ab`` is the one inference contract used by the pipeline, evaluation and serving:

    * ``l``: lightness, float tensor (B, 1, H, W) in CIE L units [0, 100].
    * ``hint_ab`` (B, 2, H, W) in Lab units and ``hint_mask`` (B, 1, H, W) in {0, 1}: user colour
      points (only models whose spec has ``supports_hints``; others ignore them).
    * ``seed``: for models with diverse outputs (``supports_seed``); same seed, same colours.
    * returns ab, float tensor (B, 2, H, W) in CIE Lab units (roughly [-110, 110]), same H, W as ``l``.
    """

    model_id: str
    model_args: dict

    def predict_ab(
        self,
        l: torch.Tensor,
        *,
        hint_ab: torch.Tensor | None = None,
        hint_mask: torch.Tensor | None = None,
        seed: int | None = None,
    ) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement predict_ab")
