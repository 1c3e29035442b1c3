"""Emil Wallner's three-step colouriser (alpha, beta, full after Baldassarre et al. "Deep Koalarization")."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from colorizers.color import L_MAX, denormalize_ab, l_to_gray_rgb_t
from colorizers.models.base import ColorizationModel
from colorizers.models.pretrained import PretrainedColorizer, upsample_to
from colorizers.registry import register_model

TUTORIAL = 'Emil Wallner, "Coloring B&W portraits with neural networks" (FloydHub blog, 2017)'
KOALARIZATION = (
    'F. Baldassarre, D. Gonzalez Morin, L. Rodes-Guirao, "Deep Koalarization: Image Colorization using CNNs '
    'and Inception-ResNet-v2" (arXiv:1712.03400, 2017)'
)

AB_SCALE = 128.0  # the tutorial's targets are ab / 128, predicted through tanh
STRIDE = 8  # every Wallner network halves the resolution three times


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    """3x3 'same' convolution + ReLU, the tutorial's only building block."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.ReLU(inplace=True))


def _up() -> nn.Upsample:
    return nn.Upsample(scale_factor=2, mode="nearest")


def _pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Replicate-pad the bottom/right edges so H and W are multiples of ``multiple``."""
    pad_h, pad_w = -x.shape[-2] % multiple, -x.shape[-1] % multiple
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
    return x


def _param_dtype(module: nn.Module) -> torch.dtype:
    param = next(module.parameters(), None)
    return torch.float32 if param is None else param.dtype


class _WallnerBase(ColorizationModel):
    """Shared contract: ``forward(l)`` -> ab / 128 in [-1, 1] (tanh), ``predict_ab`` -> ab in Lab units."""

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, l: torch.Tensor) -> torch.Tensor:
        """L in [0, 100], (B, 1, H, W) -> ab / 128, (B, 2, H, W); any H, W (padded to a multiple of 8 inside)."""
        h, w = l.shape[-2:]
        x = _pad_to_multiple(l.to(_param_dtype(self)) / L_MAX, STRIDE)
        return self._run(x)[..., :h, :w]

    def predict_ab(
        self,
        l: torch.Tensor,
        *,
        hint_ab: torch.Tensor | None = None,
        hint_mask: torch.Tensor | None = None,
        seed: int | None = None,
    ) -> torch.Tensor:
        return denormalize_ab(self.forward(l).float(), AB_SCALE)


@register_model(
    "wallner-alpha",
    family="wallner",
    description="The tutorial's alpha toy: eight ReLU 3x3 convolutions and a tanh head that overfit one photo.",
    variants={"tiny": {"widths": (4, 8, 16)}, "compact": {"widths": (8, 16, 32)}},
    working_size=256,
    served=False,
    paper=TUTORIAL,
)
class WallnerAlpha(_WallnerBase):
    """Alpha: stride-2 convolutions down to 1/8, nearest upsampling back, tanh ab / 128.

    ``widths=(8, 16, 32)`` are the tutorial's (about 32 k parameters). Its recipe trains on a single image
    until it reproduces it, so the model demonstrates the idea and is not served.
    """

    def __init__(self, widths: Sequence[int] = (8, 16, 32)) -> None:
        super().__init__()
        w1, w2, w3 = widths
        self.encoder = nn.Sequential(
            _conv(1, w1, 2), _conv(w1, w1), _conv(w1, w2), _conv(w2, w2, 2), _conv(w2, w3), _conv(w3, w3, 2)
        )
        self.decoder = nn.Sequential(
            _up(), _conv(w3, w3), _up(), _conv(w3, w2), _up(), nn.Conv2d(w2, 2, 3, padding=1), nn.Tanh()
        )

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


@register_model(
    "wallner-beta",
    family="wallner",
    description="The tutorial's beta: strided-conv encoder (64..512 channels at full width), upsampling decoder, "
    "tanh ab/128.",
    variants={
        "tiny": {"width": 6},
        "compact": {"backbone": "efficientnet-lite0", "width": 64},
        "full": {"width": 64},
    },
    working_size=256,
    paper=TUTORIAL,
)
def wallner_beta(backbone: str | None = None, **args) -> nn.Module:
    """The compact variant stands on the pretrained encoder; tiny and full are the tutorial's own encoder."""
    return WallnerBetaPretrained(backbone, **args) if backbone else WallnerBeta(**args)


class WallnerBeta(_WallnerBase):
    """Beta: eleven ReLU 3x3 convolutions (w, w/2, 2w, 2w/2, 4w, 4w/2, 8w, 4w, 2w | up, w | up, w/2), tanh, up.

    ``width`` is the first layer's channel count; 64 gives the tutorial's 64..512 layout. Inner upsampling
    is nearest-neighbour as in the tutorial; the last (chroma) upsampling is bilinear.
    """

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        w = width
        self.encoder = nn.Sequential(
            _conv(1, w),
            _conv(w, w, 2),
            _conv(w, 2 * w),
            _conv(2 * w, 2 * w, 2),
            _conv(2 * w, 4 * w),
            _conv(4 * w, 4 * w, 2),
            _conv(4 * w, 8 * w),
            _conv(8 * w, 4 * w),
            _conv(4 * w, 2 * w),
        )
        self.decoder = nn.Sequential(
            _up(),
            _conv(2 * w, w),
            _up(),
            _conv(w, w // 2),
            nn.Conv2d(w // 2, 2, 3, padding=1),
            nn.Tanh(),
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
        )

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class CompactEmbedding(nn.Module):
    """Small classifier-shaped CNN: RGB (B, 3, S, S) -> global embedding (B, embed_dim), trained with the colouriser."""

    def __init__(self, embed_dim: int, width: int = 16) -> None:
        super().__init__()
        chans = (3, width, 2 * width, 4 * width, 8 * width)
        layers: list[nn.Module] = []
        for cin, cout in pairwise(chans):
            layers += [nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True)]
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(chans[-1], embed_dim)

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        x = self.features(rgb).mean(dim=(2, 3))  # (B, C, h, w) -> (B, C)
        return self.head(x)


@register_model(
    "wallner-full",
    family="wallner",
    description="The tutorial's full version (Deep Koalarization): encoder to 1/8, a global image embedding tiled "
    "and fused by a 1x1 conv, upsampling decoder, tanh ab/128.",
    variants={
        "tiny": {"width": 4, "embed_dim": 16, "embed_size": 32, "embed_width": 4},
        "compact": {"backbone": "efficientnet-lite0", "width": 64, "fusion": 256},
        "full": {"width": 64, "embed_dim": 1000, "embed_size": 299, "embed_width": 32},
    },
    working_size=256,
    paper=f"{TUTORIAL}; {KOALARIZATION}",
)
def wallner_full(backbone: str | None = None, **args) -> nn.Module:
    """The compact variant fuses the pretrained classifier's embedding; tiny and full build their own."""
    return WallnerFullPretrained(backbone, **args) if backbone else WallnerFull(**args)


class WallnerFull(_WallnerBase):
    """Encoder + fusion + decoder, with a pluggable global embedding network.

    * encoder: 3x3 ReLU convolutions w/2, 2w, 2w/2, 4w, 4w/2, 8w, 8w, 4w (``/2`` = stride 2) -> (B, 4w, H/8, W/8);
    * fusion: the (B, embed_dim) embedding is tiled over H/8 x W/8, concatenated, and mixed by a 1x1 conv to 4w;
    * decoder: 2w | up | w | up | w/2, w/4, 2 (tanh) | up (bilinear) -> ab / 128.

    ``width=64`` and ``embed_dim=1000`` give the tutorial's layout, where the embedding is Inception-ResNet-v2's
    1000-d output for the grey image replicated to RGB at 299x299. ``embedding`` selects the embedding network:
    ``"compact"`` builds :class:`CompactEmbedding` (trained here with the colouriser), or pass any ``nn.Module``
    that maps RGB (B, 3, embed_size, embed_size), normalised by ``embed_mean``/``embed_std``, to (B, embed_dim)
    (for instance an operator's pretrained classifier; ``freeze_embedding=True`` keeps it fixed and in eval mode).
    """

    embed_mean: torch.Tensor
    embed_std: torch.Tensor

    def __init__(
        self,
        width: int = 64,
        embed_dim: int = 1000,
        embedding: str | nn.Module = "compact",
        embed_size: int = 299,
        embed_width: int = 32,
        embed_mean: Sequence[float] = (0.5, 0.5, 0.5),
        embed_std: Sequence[float] = (0.5, 0.5, 0.5),
        freeze_embedding: bool = False,
    ) -> None:
        super().__init__()
        w = width
        w2, w4 = max(w // 2, 4), max(w // 4, 4)  # the decoder's last widths (never a one-channel bottleneck)
        self.embed_dim = embed_dim
        self.embed_size = embed_size
        self.freeze_embedding = freeze_embedding
        if isinstance(embedding, nn.Module):
            self.embedding = embedding
        elif embedding == "compact":
            self.embedding = CompactEmbedding(embed_dim, embed_width)
        else:
            raise ValueError(f"embedding must be 'compact' or an nn.Module, not {embedding!r}")
        if freeze_embedding:
            self.embedding.requires_grad_(False)
        self.register_buffer("embed_mean", torch.tensor(embed_mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("embed_std", torch.tensor(embed_std).view(1, 3, 1, 1), persistent=False)
        self.encoder = nn.Sequential(
            _conv(1, w, 2),
            _conv(w, 2 * w),
            _conv(2 * w, 2 * w, 2),
            _conv(2 * w, 4 * w),
            _conv(4 * w, 4 * w, 2),
            _conv(4 * w, 8 * w),
            _conv(8 * w, 8 * w),
            _conv(8 * w, 4 * w),
        )
        self.fusion = nn.Sequential(nn.Conv2d(4 * w + embed_dim, 4 * w, 1), nn.ReLU(inplace=True))
        self.decoder = nn.Sequential(
            _conv(4 * w, 2 * w),
            _up(),
            _conv(2 * w, w),
            _up(),
            _conv(w, w2),
            _conv(w2, w4),
            nn.Conv2d(w4, 2, 3, padding=1),
            nn.Tanh(),
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
        )

    def train(self, mode: bool = True) -> WallnerFull:
        super().train(mode)
        if self.freeze_embedding:
            self.embedding.eval()
        return self

    def embed(self, l: torch.Tensor) -> torch.Tensor:
        """L in [0, 100], (B, 1, H, W) -> global embedding (B, embed_dim) from the grey image as RGB."""
        size = (self.embed_size, self.embed_size)
        small = F.interpolate(l.float(), size=size, mode="bilinear", align_corners=False, antialias=True)
        rgb = l_to_gray_rgb_t(small)  # (B, 1, S, S) -> (B, 3, S, S) grey sRGB in [0, 1]
        x = (rgb - self.embed_mean.float()) / self.embed_std.float()
        out = self.embedding(x.to(_param_dtype(self.embedding)))
        if isinstance(out, (tuple, list)):
            out = out[0]
        out = out.flatten(1)  # (B, D, 1, 1) or (B, D) -> (B, D)
        if out.shape[1] != self.embed_dim:
            raise ValueError(f"the embedding network returned {out.shape[1]} features; embed_dim is {self.embed_dim}")
        return out

    def forward(self, l: torch.Tensor, embedding: torch.Tensor | None = None) -> torch.Tensor:
        """L (B, 1, H, W) in [0, 100] -> ab / 128 (B, 2, H, W); ``embedding`` (B, embed_dim) may be precomputed."""
        if embedding is None:
            embedding = self.embed(l)
        h, w = l.shape[-2:]
        dtype = _param_dtype(self.encoder)
        feat = self.encoder(_pad_to_multiple(l.to(dtype) / L_MAX, STRIDE))  # (B, 4w, H/8, W/8)
        tiled = embedding.to(dtype)[:, :, None, None].expand(-1, -1, *feat.shape[-2:])  # (B, D) -> (B, D, H/8, W/8)
        fused = self.fusion(torch.cat([feat, tiled], dim=1))  # (B, 4w + D, H/8, W/8) -> (B, 4w, H/8, W/8)
        return self.decoder(fused)[..., :h, :w]


# --------------------------------------------------------------------------------------------------------------
# Compact variants on the pretrained EfficientNet-Lite encoder
# --------------------------------------------------------------------------------------------------------------


class _WallnerPretrained(PretrainedColorizer):
    """Shared contract of the compact Wallner models: ``forward(l)`` -> ab / 128 through tanh."""

    def native_ab(self, l, hint_ab, hint_mask, seed):
        return denormalize_ab(self(l).float(), AB_SCALE)


class WallnerBetaPretrained(_WallnerPretrained):
    """Beta's upsampling decoder (no skip connections, ReLU 3x3 convs, tanh ab/128) on the encoder's 1/16 map."""

    def __init__(self, backbone: str, width: int = 64, **common: Any) -> None:
        super().__init__(backbone, **common)
        w = width
        self.decoder = nn.Sequential(
            _conv(self.encoder.channels[16], 4 * w),
            _up(),
            _conv(4 * w, 2 * w),
            _up(),
            _conv(2 * w, w),
            _up(),
            _conv(w, w // 2),
            nn.Conv2d(w // 2, 2, 3, padding=1),
            nn.Tanh(),
        )

    def forward(self, l: torch.Tensor) -> torch.Tensor:
        """L (B, 1, H, W), H and W multiples of 32 -> ab / 128 (B, 2, H, W)."""
        features = self.encoder(l)
        return upsample_to(self.decoder(features[16]), l)  # (B, 2, H/2, W/2) -> (B, 2, H, W)


class WallnerFullPretrained(_WallnerPretrained):
    """Deep Koalarization on a pretrained classifier: mid-level features at 1/8, the classifier's pooled
    1280-d embedding tiled over them and fused by a 1x1 conv, then the upsampling decoder, tanh ab/128."""

    def __init__(self, backbone: str, width: int = 64, fusion: int = 256, **common: Any) -> None:
        super().__init__(backbone, **common)
        w = width
        self.mid = nn.Sequential(_conv(self.encoder.channels[8], fusion), _conv(fusion, fusion))
        self.fusion = nn.Sequential(nn.Conv2d(fusion + 1280, fusion, 1), nn.ReLU(inplace=True))
        self.decoder = nn.Sequential(
            _conv(fusion, 2 * w),
            _up(),
            _conv(2 * w, w),
            _up(),
            _conv(w, w // 2),
            nn.Conv2d(w // 2, 2, 3, padding=1),
            nn.Tanh(),
        )

    def forward(self, l: torch.Tensor) -> torch.Tensor:
        """L (B, 1, H, W), H and W multiples of 32 -> ab / 128 (B, 2, H, W)."""
        features = self.encoder(l)
        mid = self.mid(features[8])  # (B, F, H/8, W/8)
        tiled = features["embedding"][:, :, None, None].expand(-1, -1, *mid.shape[-2:])  # (B, 1280, H/8, W/8)
        fused = self.fusion(torch.cat([mid, tiled], dim=1))  # (B, F, H/8, W/8)
        return upsample_to(self.decoder(fused), l)  # (B, 2, H/2, W/2) -> (B, 2, H, W)
