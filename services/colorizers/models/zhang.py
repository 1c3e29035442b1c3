"""Zhang et al. colourisers: ECCV 2016 (313-bin classification, annealed mean) and SIGGRAPH 2017 (user hints).

``zhang-eccv16``: "Colorful Image Colorization" (Zhang, Isola, Efros, ECCV 2016). Eight VGG-style blocks
(model1..model8): 3x3 conv + ReLU stacks, each block ending in BatchNorm; blocks 1-3 end with a stride-2
conv (1/8 resolution), blocks 5-6 use dilation 2, block 8 upsamples x2 with a 4x4 transposed conv and
ends in a 1x1 conv to logits over the 313 in-gamut ab bins at 1/4 resolution. ``model_out`` is the fixed
1x1 conv (no bias) that maps the bin distribution to ab: its weight holds the bin centres / 110 (``AB_MAX``).

``zhang-siggraph17``: "Real-Time User-Guided Image Colorization with Learned Deep Priors" (Zhang, Zhu,
Isola, Geng, Lin, Yu, Efros, SIGGRAPH 2017), the local-hints network. Input L, hint ab and hint mask
(4 channels); the same encoder (subsampling by 2 after blocks 1-3), then a U-Net decoder (model8..model10,
transposed-conv upsampling plus conv shortcuts from blocks 3, 2, 1) and a 1x1 conv + tanh to ab (x110).
A 1x1 classification branch on the 1/4-resolution decoder features predicts a distribution over the
full 23x23 ab grid (529 classes).

Input normalisation of both: (L - 50) / 100, ab / 110, mask - 0.5 (``hint_mask_offset``; the authors' released
siggraph17 weights read the mask as given, offset 0, which their imported sidecar records).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from colorizers import ab_gamut
from colorizers.color import AB_MAX, denormalize_ab, normalize_ab, normalize_l
from colorizers.models.base import ColorizationModel
from colorizers.models.pretrained import PretrainedColorizer, conv_bn_relu, upsample_to
from colorizers.registry import register_model

MASK_CENT = 0.5  # the hint mask enters the network as mask - 0.5 (the project's convention)

ENCODER_WIDTHS = (64, 128, 256, 512, 512, 512, 512)
ENCODER_DEPTHS = (2, 2, 3, 3, 3, 3, 3)
ENCODER_DILATIONS = (1, 1, 1, 1, 2, 2, 1)


class ZhangBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d whose state_dict has no ``num_batches_tracked`` (the published layout lists none).

    The counter is only read when ``momentum`` is None, which it never is here. State dicts that do carry
    it (saved from a stock BatchNorm2d) still load strictly: the entry is dropped.
    """

    def __init__(self, num_features: int) -> None:
        super().__init__(num_features)
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long), persistent=False)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[no-untyped-def]
        state_dict.pop(prefix + "num_batches_tracked", None)
        # Skip _NormBase's upgrade step, which would re-insert the counter into state_dict.
        nn.Module._load_from_state_dict(self, state_dict, prefix, *args, **kwargs)


def _conv(cin: int, cout: int, *, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation)


def _encoder_block(cin: int, cout: int, depth: int, *, dilation: int = 1, last_stride: int = 1) -> nn.Sequential:
    """``depth`` x (3x3 conv, ReLU), then BatchNorm; the last conv carries ``last_stride``."""
    layers: list[nn.Module] = []
    for i in range(depth):
        stride = last_stride if i == depth - 1 else 1
        layers += [_conv(cin if i == 0 else cout, cout, stride=stride, dilation=dilation), nn.ReLU(inplace=True)]
    layers.append(ZhangBatchNorm(cout))
    return nn.Sequential(*layers)


def _upsample(cin: int, cout: int) -> nn.ConvTranspose2d:
    """x2 upsampling: 4x4 transposed conv, stride 2, padding 1."""
    return nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1)


def _check_lengths(**sequences: tuple[Sequence[int], int]) -> None:
    for name, (values, length) in sequences.items():
        if len(values) != length:
            raise ValueError(f"{name} needs {length} values, got {len(values)}")


def _pad_to_multiple(x: torch.Tensor, multiple: int, mode: str) -> torch.Tensor:
    """Pad (B, C, H, W) at the bottom/right so H and W are multiples of ``multiple``."""
    h, w = x.shape[-2:]
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    if pad_h == 0 and pad_w == 0:
        return x
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)


@register_model(
    "zhang-eccv16",
    family="zhang",
    description="Zhang et al. 2016: VGG-style CNN classifying 313 quantised ab bins, decoded by annealed mean",
    variants={
        "tiny": {
            "widths": [4, 8, 8, 16, 16, 16, 16, 8],
            "depths": [1, 1, 1, 1, 1, 1, 1, 1],
        },
        "compact": {"backbone": "efficientnet-lite0", "width": 128},
        "full": {
            "widths": [64, 128, 256, 512, 512, 512, 512, 256],
            "depths": [2, 2, 3, 3, 3, 3, 3, 3],
        },
    },
    working_size=256,
    paper="Zhang, Isola, Efros. Colorful Image Colorization. ECCV 2016. arXiv:1603.08511",
    published_checkpoint="colorization_release_v2-9b330a0b.pth (the authors' PyTorch release of the Caffe model)",
)
def zhang_eccv16(backbone: str | None = None, **args) -> nn.Module:
    """The compact variant classifies from the pretrained encoder's features; tiny and full are the VGG net."""
    return ECCV16Pretrained(backbone, **args) if backbone else ZhangECCV16(**args)


class ZhangECCV16(ColorizationModel):
    """Classification colouriser: ``forward`` gives logits over the 313 ab bins at 1/4 resolution.

    ``widths``/``depths`` give the output channels / 3x3 convs of model1..model8 (model8 counts its
    transposed conv). ``temperature`` is the annealed-mean T used by ``predict_ab``: 0.38 for weights trained
    here; the authors' released weights have the Caffe model's logit scale 2.606 (= 1 / 0.38) folded into
    model8's last conv, so they are decoded once with T = 1 (their sidecar says so). Training compares the
    logits with ``ab_gamut.soft_encode`` of the ground truth resized to the logits' size (1/4), weighted by
    ``ab_gamut.rebalancing_weights`` (``ab_gamut.rebalanced_cross_entropy``).
    """

    def __init__(
        self,
        widths: Sequence[int] = (64, 128, 256, 512, 512, 512, 512, 256),
        depths: Sequence[int] = (2, 2, 3, 3, 3, 3, 3, 3),
        dilations: Sequence[int] = ENCODER_DILATIONS,
        temperature: float = ab_gamut.ANNEAL_TEMPERATURE,
    ) -> None:
        super().__init__()
        _check_lengths(widths=(widths, 8), depths=(depths, 8), dilations=(dilations, 7))
        if min(depths) < 1:
            raise ValueError("every block needs at least one conv")
        self.num_bins = ab_gamut.NUM_BINS
        self.temperature = float(temperature)
        cin = 1
        for i in range(7):
            stride = 2 if i < 3 else 1
            block = _encoder_block(cin, widths[i], depths[i], dilation=dilations[i], last_stride=stride)
            setattr(self, f"model{i + 1}", block)
            cin = widths[i]
        # model8: transposed conv x2, (depth - 1) x 3x3 conv, each followed by ReLU, then 1x1 conv to bin logits.
        layers: list[nn.Module] = [_upsample(cin, widths[7]), nn.ReLU(inplace=True)]
        for _ in range(depths[7] - 1):
            layers += [_conv(widths[7], widths[7]), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(widths[7], self.num_bins, 1))
        self.model8 = nn.Sequential(*layers)
        # Bin distribution -> ab / 110: a fixed linear map whose weight is the bin centres.
        self.model_out = nn.Conv2d(self.num_bins, 2, 1, bias=False)
        with torch.no_grad():
            centres = normalize_ab(ab_gamut.bin_centres())  # (Q, 2)
            self.model_out.weight.copy_(centres.t().reshape(2, self.num_bins, 1, 1))  # (2, Q, 1, 1)
        self.model_out.weight.requires_grad_(False)

    def forward(self, l: torch.Tensor) -> torch.Tensor:
        """L (B, 1, H, W) in [0, 100] -> bin logits (B, 313, ceil(H/8)*2, ceil(W/8)*2), i.e. 1/4 resolution."""
        x = normalize_l(l)
        for i in range(1, 9):
            x = getattr(self, f"model{i}")(x)
        return x

    def bin_centres(self) -> torch.Tensor:
        """The ab centres (Q, 2) in Lab units that ``model_out`` holds (imported weights bring their own)."""
        return denormalize_ab(self.model_out.weight.detach().reshape(2, self.num_bins).t())  # (Q, 2)

    def predict_ab(
        self,
        l: torch.Tensor,
        *,
        hint_ab: torch.Tensor | None = None,
        hint_mask: torch.Tensor | None = None,
        seed: int | None = None,
    ) -> torch.Tensor:
        """Annealed mean (T = ``self.temperature``) of the bin distribution, upsampled to the size of ``l``."""
        logits = self(l)  # (B, Q, h, w)
        ab = ab_gamut.annealed_mean(logits, self.bin_centres(), self.temperature)  # (B, 2, h, w)
        return F.interpolate(ab, size=l.shape[-2:], mode="bilinear", align_corners=False)


@register_model(
    "zhang-siggraph17",
    family="zhang",
    description="Zhang et al. 2017: U-Net colouriser guided by optional user colour points (ab regression)",
    variants={
        "tiny": {
            "widths": [4, 8, 8, 16, 16, 16, 16],
            "depths": [1, 1, 1, 1, 1, 1, 1],
            "decoder_widths": [8, 8, 8],
            "decoder_depths": [1, 1, 1],
        },
        "compact": {"backbone": "efficientnet-lite0", "width": 96},
        "full": {
            "widths": [64, 128, 256, 512, 512, 512, 512],
            "depths": [2, 2, 3, 3, 3, 3, 3],
            "decoder_widths": [256, 128, 128],
            "decoder_depths": [2, 1, 1],
        },
    },
    working_size=256,
    supports_hints=True,
    paper=(
        "Zhang, Zhu, Isola, Geng, Lin, Yu, Efros. Real-Time User-Guided Image Colorization with Learned "
        "Deep Priors. SIGGRAPH 2017 (ACM TOG 36(4)). arXiv:1705.02999"
    ),
    published_checkpoint="siggraph17-df00044c.pth (the authors' PyTorch release)",
)
def zhang_siggraph17(backbone: str | None = None, **args) -> nn.Module:
    """The compact variant decodes the pretrained encoder's features with the hints; tiny and full are Zhang's."""
    return SIGGRAPH17Pretrained(backbone, **args) if backbone else ZhangSIGGRAPH17(**args)


class ZhangSIGGRAPH17(ColorizationModel):
    """Hint-guided U-Net: ``forward(l, hint_ab, hint_mask)`` gives ab (B, 2, H, W) in Lab units.

    ``widths``/``depths``/``dilations`` describe encoder blocks model1..model7; ``decoder_widths`` and
    ``decoder_depths`` the decoder blocks model8..model10 (3x3 convs after the skip sum). The hint mask enters
    the network as ``mask - hint_mask_offset``: 0.5 as the project trains (the authors' training code), 0 for
    the authors' released weights.
    """

    model1: nn.Sequential  # built in a loop, declared for type checkers
    model2: nn.Sequential
    model3: nn.Sequential

    def __init__(
        self,
        widths: Sequence[int] = ENCODER_WIDTHS,
        depths: Sequence[int] = ENCODER_DEPTHS,
        dilations: Sequence[int] = ENCODER_DILATIONS,
        decoder_widths: Sequence[int] = (256, 128, 128),
        decoder_depths: Sequence[int] = (2, 1, 1),
        num_classes: int = ab_gamut.FULL_GRID_BINS,
        hint_mask_offset: float = MASK_CENT,
    ) -> None:
        super().__init__()
        self.hint_mask_offset = float(hint_mask_offset)
        _check_lengths(
            widths=(widths, 7),
            depths=(depths, 7),
            dilations=(dilations, 7),
            decoder_widths=(decoder_widths, 3),
            decoder_depths=(decoder_depths, 3),
        )
        if min(depths) < 1 or min(decoder_depths) < 1:
            raise ValueError("every block needs at least one conv")
        cin = 4  # L, hint a, hint b, hint mask
        for i in range(7):
            setattr(self, f"model{i + 1}", _encoder_block(cin, widths[i], depths[i], dilation=dilations[i]))
            cin = widths[i]
        d8, d9, d10 = decoder_widths
        self.model8up = nn.Sequential(_upsample(widths[6], d8))
        self.model3short8 = nn.Sequential(_conv(widths[2], d8))
        self.model8 = self._decoder_block(d8, decoder_depths[0], norm=True)
        self.model9up = nn.Sequential(_upsample(d8, d9))
        self.model2short9 = nn.Sequential(_conv(widths[1], d9))
        self.model9 = self._decoder_block(d9, decoder_depths[1], norm=True)
        self.model10up = nn.Sequential(_upsample(d9, d10))
        self.model1short10 = nn.Sequential(_conv(widths[0], d10))
        self.model10 = self._decoder_block(d10, decoder_depths[2], norm=False)
        self.model_class = nn.Sequential(nn.Conv2d(d8, num_classes, 1))
        self.model_out = nn.Sequential(nn.Conv2d(d10, 2, 1), nn.Tanh())

    @staticmethod
    def _decoder_block(width: int, depth: int, *, norm: bool) -> nn.Sequential:
        """ReLU on the skip sum, ``depth`` x (3x3 conv, ReLU), then BatchNorm; without norm the last ReLU is leaky."""
        layers: list[nn.Module] = [nn.ReLU(inplace=True)]
        for i in range(depth):
            last = i == depth - 1
            act = nn.LeakyReLU(0.2, inplace=True) if last and not norm else nn.ReLU(inplace=True)
            layers += [_conv(width, width), act]
        if norm:
            layers.append(ZhangBatchNorm(width))
        return nn.Sequential(*layers)

    def forward_with_classes(
        self, l: torch.Tensor, hint_ab: torch.Tensor | None = None, hint_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """ab (B, 2, H, W) and the classification branch's logits (B, 529, ceil(H/8)*2, ceil(W/8)*2)."""
        b, _, h, w = l.shape
        if hint_ab is None or hint_mask is None:
            hint_ab = l.new_zeros(b, 2, h, w)
            hint_mask = l.new_zeros(b, 1, h, w)
        hints = torch.cat([normalize_ab(hint_ab * hint_mask), hint_mask], dim=1)  # (B, 3, H, W), no ab without a hint
        lightness = _pad_to_multiple(normalize_l(l), 8, "replicate")  # (B, 1, H8, W8)
        hints = _pad_to_multiple(hints, 8, "constant")  # (B, 3, H8, W8), no hints in the padding
        x = torch.cat([lightness, hints[:, :2], hints[:, 2:] - self.hint_mask_offset], dim=1)  # (B, 4, H8, W8)

        conv1 = self.model1(x)  # (B, c1, H8, W8)
        conv2 = self.model2(conv1[:, :, ::2, ::2])  # (B, c2, H8/2, W8/2)
        conv3 = self.model3(conv2[:, :, ::2, ::2])  # (B, c3, H8/4, W8/4)
        x = conv3[:, :, ::2, ::2]  # (B, c3, H8/8, W8/8)
        for i in range(4, 8):
            x = getattr(self, f"model{i}")(x)  # (B, c7, H8/8, W8/8)
        conv8 = self.model8(self.model8up(x) + self.model3short8(conv3))  # (B, d8, H8/4, W8/4)
        conv9 = self.model9(self.model9up(conv8) + self.model2short9(conv2))  # (B, d9, H8/2, W8/2)
        conv10 = self.model10(self.model10up(conv9) + self.model1short10(conv1))  # (B, d10, H8, W8)
        ab = denormalize_ab(self.model_out(conv10)[:, :, :h, :w])  # (B, 2, H, W)
        classes = self.model_class(conv8)  # (B, num_classes, H8/4, W8/4)
        return ab, classes

    def forward(
        self, l: torch.Tensor, hint_ab: torch.Tensor | None = None, hint_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """L (B, 1, H, W), hint ab (B, 2, H, W) in Lab units, hint mask (B, 1, H, W) -> ab (B, 2, H, W)."""
        return self.forward_with_classes(l, hint_ab, hint_mask)[0]

    def predict_ab(
        self,
        l: torch.Tensor,
        *,
        hint_ab: torch.Tensor | None = None,
        hint_mask: torch.Tensor | None = None,
        seed: int | None = None,
    ) -> torch.Tensor:
        """ab for ``l``; without hints (or with an all-zero mask) this is automatic colourisation."""
        return self(l, hint_ab, hint_mask)


# --------------------------------------------------------------------------------------------------------------
# Compact variants on the pretrained EfficientNet-Lite encoder
# --------------------------------------------------------------------------------------------------------------


class TopDownFusion(nn.Module):
    """Feature-pyramid fusion of the encoder maps: each projected to ``width`` and summed at 1/4 resolution."""

    def __init__(self, channels: dict[int, int], width: int) -> None:
        super().__init__()
        self.strides = sorted(channels)  # 4, 8, 16, 32
        self.project = nn.ModuleDict({str(s): nn.Conv2d(channels[s], width, 1) for s in self.strides})

    def forward(self, features: dict) -> torch.Tensor:
        finest = features[self.strides[0]]
        projected = [upsample_to(self.project[str(s)](features[s]), finest) for s in self.strides]
        return torch.stack(projected).sum(dim=0)  # (B, width, H/4, W/4)


class BinClassifier(nn.Module):
    """Zhang 2016's head on pretrained features: dilated 3x3 convs over the fused pyramid at 1/4 resolution, logits
    over the 313 in-gamut ab bins."""

    def __init__(self, channels: dict[int, int], width: int) -> None:
        super().__init__()
        self.fuse = TopDownFusion(channels, width)
        self.head = nn.Sequential(
            nn.ReLU(inplace=True),
            conv_bn_relu(width, width, dilation=1),
            conv_bn_relu(width, width, dilation=2),
            conv_bn_relu(width, width, dilation=4),
            nn.Conv2d(width, ab_gamut.NUM_BINS, 1),
        )

    def forward(self, features: dict) -> torch.Tensor:
        return self.head(self.fuse(features))  # (B, 313, H/4, W/4)


class ECCV16Pretrained(PretrainedColorizer):
    """Zhang 2016's classification on pretrained features (``BinClassifier``), trained with rebalanced
    cross-entropy and decoded by annealed mean.

    Rebalancing weights each pixel's loss by w(q) of its colour, which pushes the learnt distribution towards
    rare (saturated) colours by the factor w. The weights training used are kept with the model
    (``log_rebalancing``, set by the recipe), and decoding divides the distribution by w ** ``prior_strength``:
    0 decodes as the paper does, 1 undoes the push entirely; the strength is fitted with the chroma floor and
    gain on photos of held-out sources (``python -m training calibrate``).

    With ``members`` > 1 the model is an ensemble of classifiers trained apart (``python -m training ensemble``) on
    the one encoder pass: its distribution is the mean of theirs, sure where they agree and spread where they do
    not, so that its annealed mean falls towards grey where the trainings disagree.
    """

    def __init__(
        self,
        backbone: str,
        width: int = 128,
        temperature: float = ab_gamut.ANNEAL_TEMPERATURE,
        prior_strength: float = 0.0,
        members: int = 1,
        **common: Any,
    ) -> None:
        super().__init__(backbone, **common)
        self.temperature = float(temperature)
        self.prior_strength = float(prior_strength)
        self.register_buffer("log_rebalancing", torch.zeros(ab_gamut.NUM_BINS))  # (313,) log w of training
        self.classifiers = nn.ModuleList(BinClassifier(self.encoder.channels, width) for _ in range(members))
        self.register_buffer("centres", ab_gamut.bin_centres(), persistent=False)  # (313, 2) Lab units

    def forward(self, l: torch.Tensor) -> torch.Tensor:
        """L (B, 1, H, W), H and W multiples of 32 -> bin logits (B, 313, H/4, W/4); an ensemble's are the log of
        its members' mean probabilities."""
        features = self.encoder(l)
        if len(self.classifiers) == 1:
            return self.classifiers[0](features)
        logs = torch.stack([F.log_softmax(c(features).float(), dim=1) for c in self.classifiers])  # (K, B, 313, ..)
        return torch.logsumexp(logs, dim=0) - math.log(len(self.classifiers))

    def native_ab(self, l, hint_ab, hint_mask, seed):
        logits = self(l).float() - self.prior_strength * self.log_rebalancing.float().view(1, -1, 1, 1)
        ab = ab_gamut.annealed_mean(logits, self.centres, self.temperature)  # (B, 2, H/4, W/4)
        return upsample_to(ab, l)


class SIGGRAPH17Pretrained(PretrainedColorizer):
    """Zhang 2017's user-guided regression on pretrained features: the hint points (ab / 110 and their mask,
    with L) enter through their own conv branch at 1/4 resolution and again at full resolution, so a hint
    steers its region; tanh x 110 gives ab. Trained with Huber on ab and randomly simulated hints."""

    def __init__(self, backbone: str, width: int = 96, **common: Any) -> None:
        super().__init__(backbone, **common)
        self.fuse = TopDownFusion(self.encoder.channels, width)
        self.hints_quarter = nn.Sequential(
            nn.Conv2d(4, width // 2, 3, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(width // 2, width, 3, stride=2, padding=1),
        )
        self.decoder = nn.Sequential(
            nn.ReLU(inplace=True),
            conv_bn_relu(2 * width, width),
            conv_bn_relu(width, width, dilation=2),
            nn.Conv2d(width, 2, 1),
        )
        self.refine = nn.Sequential(conv_bn_relu(6, 32), nn.Conv2d(32, 2, 3, padding=1), nn.Tanh())

    def forward(
        self, l: torch.Tensor, hint_ab: torch.Tensor | None = None, hint_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """L, hint ab (Lab units) and mask in {0, 1} (B, 1|2|1, H, W), multiples of 32 -> ab (B, 2, H, W)."""
        if hint_ab is None or hint_mask is None:
            hint_ab, hint_mask = torch.zeros_like(l).expand(-1, 2, -1, -1), torch.zeros_like(l)
        hints = torch.cat([normalize_l(l), hint_ab / AB_MAX, hint_mask], dim=1)  # (B, 4, H, W)
        quarter = self.hints_quarter(hints)  # (B, width, H/4, W/4)
        coarse = self.decoder(torch.cat([self.fuse(self.encoder(l)), quarter], dim=1))  # (B, 2, H/4, W/4)
        fine = torch.cat([upsample_to(coarse, l), hints], dim=1)  # (B, 6, H, W)
        return self.refine(fine) * AB_MAX

    def native_ab(self, l, hint_ab, hint_mask, seed):
        return self(l, hint_ab, hint_mask)
