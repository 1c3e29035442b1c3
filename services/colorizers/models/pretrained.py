"""What every compact model on the frozen ImageNet encoder shares: the encoder, padding and calibrated chroma."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from colorizers.backbone import EfficientNetLite, grey_input, pretrained_state
from colorizers.models.base import ColorizationModel

ENCODER_PREFIX = "encoder.net."
PAD_MULTIPLE = 32  # the encoder's total stride: every feature map then lines up with its neighbours


class FrozenEncoder(nn.Module):
    """EfficientNet-Lite features of the grey photo; never trained, always in eval mode, no gradients."""

    def __init__(self, backbone: str) -> None:
        super().__init__()
        self.net = EfficientNetLite(backbone)
        self.net.requires_grad_(False)
        self.train(False)  # ImageNet BatchNorm statistics, from the start
        self.channels = self.net.feature_channels  # {4: c4, 8: c8, 16: c16, 32: c32}
        self.provided: dict[int | str, torch.Tensor] | None = None  # precomputed features (training cache)

    def train(self, mode: bool = True) -> FrozenEncoder:
        super().train(False)  # ImageNet BatchNorm statistics stay as published
        return self

    @torch.no_grad()
    def forward(self, l: torch.Tensor) -> dict[int | str, torch.Tensor]:
        """L (B, 1, H, W), H and W multiples of 32 -> {4, 8, 16, 32: maps, "embedding": (B, 1280), "logits"}."""
        if self.provided is not None:
            return self.provided
        dtype = self.net._conv_stem.weight.dtype
        features = self.net.features(grey_input(l).to(dtype))
        features["logits"] = self.net._fc(features["embedding"])  # (B, 1000) ImageNet classes
        return features


class PretrainedColorizer(ColorizationModel):
    """Base of the compact models: ``self.encoder`` plus a family head; subclasses implement ``native_ab``.

    The decoding knows when the model is unsure. Where the training photos disagree, a model's prediction is
    an average of conflicting colours and so has little chroma: predicted chroma below ``chroma_floor`` is read
    as "not sure" and dropped to grey, stronger chroma is kept less that floor (a soft threshold); the result
    is scaled by ``chroma_gain``. Both are fitted on photos from source packages training never saw
    (``python -m training calibrate``), so a model falls back towards grey on unfamiliar photos instead of
    painting its training photos' colours over them. Pictures with user hints keep their full chroma.

    With ``flip_average`` an automatic picture is also colourised mirrored, and the two predictions (the second
    mirrored back) are averaged before the decoding: where the model is sure both agree; where a colour is a guess
    the two guesses often differ and their mean falls towards grey. It doubles the model pass; the calibration
    turns it on only where it pays.
    """

    def __init__(
        self, backbone: str, chroma_gain: float = 1.0, chroma_floor: float = 0.0, flip_average: bool = False
    ) -> None:
        super().__init__()
        self.encoder = FrozenEncoder(backbone)
        self.chroma_gain = chroma_gain
        self.chroma_floor = chroma_floor
        self.flip_average = bool(flip_average)

    def native_ab(
        self, l: torch.Tensor, hint_ab: torch.Tensor | None, hint_mask: torch.Tensor | None, seed: int | None
    ) -> torch.Tensor:
        """L (B, 1, H, W), H and W multiples of 32 -> ab (B, 2, H, W) in Lab units, before the decoding."""
        raise NotImplementedError

    def predict_ab(
        self,
        l: torch.Tensor,
        *,
        hint_ab: torch.Tensor | None = None,
        hint_mask: torch.Tensor | None = None,
        seed: int | None = None,
    ) -> torch.Tensor:
        ab = self._cropped_native_ab(l, hint_ab, hint_mask, seed)  # (B, 2, H, W)
        hinted = None if hint_mask is None else hint_mask.flatten(1).amax(dim=1).view(-1, 1, 1, 1) > 0  # (B, 1, 1, 1)
        automatic = ab
        if self.flip_average and (hinted is None or not bool(hinted.all())):
            mirrored = self._cropped_native_ab(l.flip(-1), _mirror(hint_ab), _mirror(hint_mask), seed)
            automatic = 0.5 * (ab + mirrored.flip(-1))
        confident = confident_chroma(automatic, self.chroma_floor, self.chroma_gain)
        return confident if hinted is None else torch.where(hinted, ab, confident)

    def _cropped_native_ab(
        self, l: torch.Tensor, hint_ab: torch.Tensor | None, hint_mask: torch.Tensor | None, seed: int | None
    ) -> torch.Tensor:
        """``native_ab`` of the inputs padded to the encoder's stride, cropped back to their size, float32."""
        h, w = l.shape[-2:]
        hint_ab = pad_to_multiple(hint_ab) if hint_ab is not None else None
        hint_mask = pad_to_multiple(hint_mask) if hint_mask is not None else None
        return self.native_ab(pad_to_multiple(l), hint_ab, hint_mask, seed)[..., :h, :w].float()


def _mirror(x: torch.Tensor | None) -> torch.Tensor | None:
    return None if x is None else x.flip(-1)


def confident_chroma(ab: torch.Tensor, floor: float, gain: float) -> torch.Tensor:
    """ab (B, 2, H, W) with its chroma soft-thresholded at ``floor`` and scaled by ``gain``."""
    if floor <= 0:
        return ab * gain
    chroma = torch.hypot(ab[:, :1], ab[:, 1:])  # (B, 1, H, W); linalg.vector_norm over dim 1 is ~80x slower on CPU
    return ab * (gain * (chroma - floor).clamp_min(0) / chroma.clamp_min(1e-6))


def pad_to_multiple(x: torch.Tensor, multiple: int = PAD_MULTIPLE) -> torch.Tensor:
    """Replicate-pad the bottom/right edges so H and W are multiples of ``multiple``."""
    pad_h, pad_w = -x.shape[-2] % multiple, -x.shape[-1] % multiple
    return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else x


def upsample_to(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Bilinear resize of ``x`` to the height and width of ``like``."""
    if x.shape[-2:] == like.shape[-2:]:
        return x
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


def conv_bn_relu(cin: int, cout: int, kernel: int = 3, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, padding=dilation * (kernel // 2), dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


@contextlib.contextmanager
def provided_features(model: nn.Module, features: dict[int | str, torch.Tensor] | None) -> Iterator[None]:
    """Within the block, the model's encoder returns ``features`` (cached for the batch) instead of computing them."""
    encoder = getattr(model, "encoder", None)
    if features is None or not isinstance(encoder, FrozenEncoder):
        yield
        return
    encoder.provided = features
    try:
        yield
    finally:
        encoder.provided = None


def load_encoder_weights(model: nn.Module) -> bool:
    """Put the published ImageNet weights into every FrozenEncoder of ``model``; False when it has none."""
    encoders = [m for m in model.modules() if isinstance(m, FrozenEncoder)]
    for encoder in encoders:
        encoder.net.load_state_dict(pretrained_state(encoder.net.name), strict=True)
    return bool(encoders)


def backbone_of(model: nn.Module) -> str | None:
    """The backbone name of a model built on a FrozenEncoder, else None."""
    encoder = getattr(model, "encoder", None)
    return encoder.net.name if isinstance(encoder, FrozenEncoder) else None
