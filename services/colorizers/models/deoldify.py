"""DeOldify (artistic and stable): a self-attention U-Net generator on a ResNet encoder, and its NoGAN critic."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

from colorizers.color import IMAGENET_MEAN, IMAGENET_STD, l_to_gray_rgb_t, rgb_to_lab_t
from colorizers.models.base import ColorizationModel
from colorizers.models.pretrained import PretrainedColorizer
from colorizers.models.resnet import RESNET_DEPTHS, STANDARD_WIDTHS, ResNetEncoder
from colorizers.registry import register_model

# The generator's output is sigmoid-squashed into this range of ImageNet-normalised RGB; it covers [0, 1] in
# every channel after denormalisation ((0 - 0.485) / 0.229 = -2.12 ... (1 - 0.406) / 0.225 = 2.64).
Y_RANGE = (-3.0, 3.0)
# predict_ab pads its input to a multiple of the encoder's total stride, so every skip connection lines up.
PAD_MULTIPLE = 32
SHUFFLE_SCALE = 2


# --------------------------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------------------------


def icnr_(weight: torch.Tensor, scale: int = SHUFFLE_SCALE) -> torch.Tensor:
    """ICNR init (Aitken et al. 2017) in place: the scale**2 output channels that pixel-shuffle into one share a kernel.

    A pixel shuffle then starts as nearest-neighbour upsampling of a randomly initialised conv, free of
    checkerboard artefacts. ``weight`` is (C_out, C_in, kh, kw) with C_out divisible by scale**2.
    """
    cout, cin, kh, kw = weight.shape
    sub = torch.empty(cout // scale**2, cin, kh, kw, dtype=weight.dtype, device=weight.device)
    nn.init.kaiming_normal_(sub)
    with torch.no_grad():
        # Output channel c * scale**2 + k shuffles into channel c, so each sub-kernel repeats scale**2 times in a row.
        weight.copy_(sub.repeat_interleave(scale**2, dim=0))  # (C_out, C_in, kh, kw)
    return weight


def _conv(cin: int, cout: int, ks: int, *, stride: int = 1, padding: int | None = None, bias: bool) -> nn.Conv2d:
    """Conv2d with Kaiming-normal weights and a zero bias ("same" padding unless given)."""
    conv = nn.Conv2d(cin, cout, ks, stride=stride, padding=(ks - 1) // 2 if padding is None else padding, bias=bias)
    nn.init.kaiming_normal_(conv.weight)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
    return conv


def conv_block(
    cin: int,
    cout: int,
    ks: int = 3,
    *,
    stride: int = 1,
    padding: int | None = None,
    bias: bool | None = None,
    activation: bool = True,
    batchnorm: bool = False,
    leaky: float | None = None,
    self_attention: bool = False,
    icnr: bool = False,
) -> nn.Sequential:
    """Spectral-norm conv (classic: weight_orig/u/v), then ReLU or LeakyReLU, BatchNorm, self-attention, as asked.

    The child indices (0 conv, 1 activation, 2 BN, 3 attention, skipping the ones left out) are those of the
    published checkpoints. The conv has a bias exactly when no BatchNorm follows it, unless ``bias`` says.
    """
    conv = _conv(cin, cout, ks, stride=stride, padding=padding, bias=(not batchnorm) if bias is None else bias)
    if icnr:
        icnr_(conv.weight)
    layers: list[nn.Module] = [spectral_norm(conv)]
    if activation:
        layers.append(nn.ReLU(inplace=True) if leaky is None else nn.LeakyReLU(leaky, inplace=True))
    if batchnorm:
        layers.append(nn.BatchNorm2d(cout))
    if self_attention:
        layers.append(SelfAttention(cout))
    return nn.Sequential(*layers)


def settle_spectral_norms_(module: nn.Module, n_iter: int = 3) -> nn.Module:
    """Run power iterations on every spectral norm's u, v buffers (in place) so sigma is right before training.

    Classic spectral norm starts from random u, v and refines them by one iteration per training forward;
    until then an eval-mode forward divides by a random, often tiny, sigma and activations explode. Loading a
    checkpoint overwrites u and v, so this only changes untrained models. A few iterations suffice: the estimate
    approaches sigma from below and only has to be of the right size, not exact.
    """
    with torch.no_grad():
        for m in module.modules():
            u, v, w = getattr(m, "weight_u", None), getattr(m, "weight_v", None), getattr(m, "weight_orig", None)
            if u is None or v is None or w is None or w.is_meta:
                continue
            mat = w.flatten(1)  # (C_out, C_in * k * k), the matrix spectral_norm normalises (dim 0)
            for _ in range(n_iter):
                v.copy_(F.normalize(mat.t() @ u, dim=0, eps=1e-12))
                u.copy_(F.normalize(mat @ v, dim=0, eps=1e-12))
    return module


class WeightNormConv2d(nn.Module):
    """Conv2d with weight normalisation (Salimans & Kingma 2016): weight = weight_g * weight_v / ||weight_v||.

    Parameters are ``bias``, ``weight_g`` (C_out, 1, 1, 1) and ``weight_v`` (C_out, C_in, k, k), the layout of
    ``torch.nn.utils.weight_norm`` that the published checkpoints were saved with.
    """

    def __init__(self, cin: int, cout: int, ks: int = 1, *, icnr: bool = False) -> None:
        super().__init__()
        self.padding = (ks - 1) // 2
        self.bias = nn.Parameter(torch.zeros(cout))
        v = torch.empty(cout, cin, ks, ks)
        if icnr:
            icnr_(v)
        else:
            nn.init.kaiming_normal_(v)
        self.weight_g = nn.Parameter(v.flatten(1).norm(dim=1).view(cout, 1, 1, 1))  # (C_out, 1, 1, 1)
        self.weight_v = nn.Parameter(v)

    @property
    def weight(self) -> torch.Tensor:
        norm = self.weight_v.flatten(1).norm(dim=1).view(-1, 1, 1, 1)  # (C_out, 1, 1, 1)
        return self.weight_g * self.weight_v / norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, self.bias, padding=self.padding)


class SelfAttention(nn.Module):
    """SAGAN self-attention (Zhang et al. 2018) with spectral-norm 1x1 Conv1d projections; gamma starts at 0."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1))
        self.query = self._projection(channels, channels // 8)
        self.key = self._projection(channels, channels // 8)
        self.value = self._projection(channels, channels)

    @staticmethod
    def _projection(cin: int, cout: int) -> nn.Module:
        conv = nn.Conv1d(cin, cout, 1, bias=False)
        nn.init.kaiming_normal_(conv.weight)
        return spectral_norm(conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        flat = x.reshape(b, c, h * w)  # (B, C, N)
        q, k, v = self.query(flat), self.key(flat), self.value(flat)  # (B, C/8, N), (B, C/8, N), (B, C, N)
        # attn[b, i, j]: how much position j attends to position i (softmax over i, as in SAGAN).
        attn = torch.softmax(torch.bmm(q.transpose(1, 2), k), dim=1)  # (B, N, N)
        out = self.gamma * torch.bmm(v, attn) + flat  # (B, C, N)
        return out.reshape(b, c, h, w)


class PixelShuffleUp(nn.Module):
    """2x upsampling: 1x1 conv to 4x the channels (ICNR init), ReLU, pixel shuffle, then a 2x2 blur.

    The blur (replication pad + 2x2 average, Sugawara et al. 2018) removes what is left of checkerboard
    artefacts. Inside U-Net blocks the conv is spectral-normalised and batch-normalised; the final upsampling
    uses a weight-normalised conv with a bias (``weight_norm=True``), as the published layouts do.
    """

    def __init__(self, cin: int, cout: int | None = None, *, weight_norm: bool = False, blur: bool = True) -> None:
        super().__init__()
        cout = cin if cout is None else cout
        if weight_norm:
            self.conv = nn.Sequential(WeightNormConv2d(cin, cout * SHUFFLE_SCALE**2, 1, icnr=True))
        else:
            self.conv = conv_block(cin, cout * SHUFFLE_SCALE**2, 1, activation=False, batchnorm=True, icnr=True)
        self.shuf = nn.PixelShuffle(SHUFFLE_SCALE)
        self.pad = nn.ReplicationPad2d((1, 0, 1, 0))
        self.blur = Blur2x2() if blur else None
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.shuf(self.relu(self.conv(x)))  # (B, 4 C_out, H, W) -> (B, C_out, 2H, 2W)
        return x if self.blur is None else self.blur(self.pad(x))


class Blur2x2(nn.Module):
    """The 2x2 average with stride 1 as a fixed depthwise convolution: the same numbers as ``nn.AvgPool2d(2, 1)``,
    about 9 times faster on a CPU (whose stride-1 average pooling over NCHW maps is a slow path); no parameters."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernel = x.new_full((x.shape[1], 1, 2, 2), 0.25)  # (C, 1, 2, 2)
        return F.conv2d(x, kernel, groups=x.shape[1])


def _match_size(up: torch.Tensor, size: torch.Size) -> torch.Tensor:
    """Nearest-resize ``up`` to ``size`` when an odd input size made the upsampled map one pixel too large."""
    return up if up.shape[-2:] == size else F.interpolate(up, size=tuple(size), mode="nearest")


class UnetBlockDeep(nn.Module):
    """Artistic decoder block: upsample, concatenate the batch-normalised skip, then two 3x3 convs."""

    def __init__(
        self, up_in: int, skip_in: int, *, final: bool, nf_factor: float, self_attention: bool, blur: bool
    ) -> None:
        super().__init__()
        self.shuf = PixelShuffleUp(up_in, up_in // 2, blur=blur)
        self.bn = nn.BatchNorm2d(skip_in)
        cin = up_in // 2 + skip_in
        self.out_channels = int((cin // 2 if final else cin) * nf_factor)
        self.conv1 = conv_block(cin, self.out_channels, batchnorm=True)
        self.conv2 = conv_block(self.out_channels, self.out_channels, batchnorm=True, self_attention=self_attention)
        self.relu = nn.ReLU()

    def forward(self, up_in: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        up = _match_size(self.shuf(up_in), skip.shape[-2:])
        x = self.relu(torch.cat([up, self.bn(skip)], dim=1))  # (B, C_up / 2 + C_skip, H, W)
        return self.conv2(self.conv1(x))


class UnetBlockWide(nn.Module):
    """Stable decoder block: upsample to n_out / 2 channels, concatenate the batch-normalised skip, one 3x3 conv."""

    def __init__(self, up_in: int, skip_in: int, n_out: int, *, self_attention: bool, blur: bool) -> None:
        super().__init__()
        half = n_out // 2
        self.shuf = PixelShuffleUp(up_in, half, blur=blur)
        self.bn = nn.BatchNorm2d(skip_in)
        self.out_channels = half
        self.conv = conv_block(half + skip_in, half, batchnorm=True, self_attention=self_attention)
        self.relu = nn.ReLU()

    def forward(self, up_in: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        up = _match_size(self.shuf(up_in), skip.shape[-2:])
        x = self.relu(torch.cat([up, self.bn(skip)], dim=1))  # (B, n_out / 2 + C_skip, H, W)
        return self.conv(x)


class ResBlock(nn.Module):
    """x + relu(conv(relu(conv(x)))) with biased spectral-norm 3x3 convs; ``bottle`` halves the inner width."""

    def __init__(self, channels: int, bottle: bool = False) -> None:
        super().__init__()
        inner = channels // 2 if bottle else channels
        self.layers = nn.ModuleList([conv_block(channels, inner), conv_block(inner, channels)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.layers[1](self.layers[0](x))


class DenseCross(nn.Module):
    """Concatenates the network input to the features (the U-Net's last cross connection); no parameters."""

    def forward(self, x: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return torch.cat([_match_size(x, image.shape[-2:]), image], dim=1)  # (B, C + 3, H, W)


class SigmoidRange(nn.Module):
    """sigmoid(x) scaled to (low, high)."""

    def __init__(self, low: float, high: float) -> None:
        super().__init__()
        self.low, self.high = float(low), float(high)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(x) * (self.high - self.low) + self.low


# --------------------------------------------------------------------------------------------------------------
# Normalisation shared by the generator, the critic and the training recipe
# --------------------------------------------------------------------------------------------------------------


def _stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return mean, std


def imagenet_normalize(rgb: torch.Tensor) -> torch.Tensor:
    """SRGB (B, 3, H, W) in [0, 1] -> the ImageNet-normalised space DeOldify's generator reads and writes."""
    mean, std = _stats(rgb)
    return (rgb - mean) / std


def imagenet_denormalize(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`imagenet_normalize` (no clamping)."""
    mean, std = _stats(x)
    return x * std + mean


# --------------------------------------------------------------------------------------------------------------
# Generator
# --------------------------------------------------------------------------------------------------------------

_DESCRIPTION = (
    'DeOldify {name} (Jason Antic): a U-Net generator on a {encoder} encoder with a "{decoder}" decoder '
    "(pixel-shuffle upsampling with ICNR init and blur, batch-normalised skip connections, spectral norm on "
    "every decoder conv, one self-attention layer at 1/8 resolution, nf_factor {nf_factor}), trained with NoGAN "
    "(generator pretraining on a perceptual loss, critic pretraining, then a short GAN phase). Input: the grey "
    "image replicated to RGB, ImageNet-normalised; output: RGB through sigmoid into (-3, 3) in that space. "
    "DeOldify renders at render_factor x 16 px (its default render factor 35 is 560 px); here the working "
    "size is 256 px unless a request sets another."
)
_PAPER = "Jason Antic, DeOldify (2018-2019), https://github.com/jantic/DeOldify; NoGAN training"


def _variants(full: dict, compact: dict, tiny: dict) -> dict[str, dict]:
    return {"tiny": tiny, "compact": compact, "full": full}


_ARTISTIC_FULL = {
    "block": "basic",
    "depths": list(RESNET_DEPTHS[34]),
    "widths": list(STANDARD_WIDTHS),
    "stem_width": 64,
    "decoder": "deep",
    "nf_factor": 1.5,
}
_STABLE_FULL = {
    "block": "bottleneck",
    "depths": list(RESNET_DEPTHS[101]),
    "widths": list(STANDARD_WIDTHS),
    "stem_width": 64,
    "decoder": "wide",
    "nf_factor": 2,
    "decoder_width": 512,
}


@register_model(
    "deoldify-stable",
    family="deoldify",
    description=_DESCRIPTION.format(name="stable", encoder="ResNet-101", decoder="wide", nf_factor=2),
    variants=_variants(
        full=_STABLE_FULL,
        compact={"backbone": "efficientnet-lite2", "decoder": "wide", "nf_factor": 2, "decoder_width": 64},
        tiny={
            "block": "bottleneck",
            "depths": [1, 1, 1, 1],
            "widths": [4, 4, 8, 8],
            "stem_width": 8,
            "decoder": "wide",
            "nf_factor": 2,
            "decoder_width": 16,
        },
    ),
    working_size=256,
    paper=_PAPER,
    published_checkpoint="ColorizeStable_gen.pth",
)
@register_model(
    "deoldify-artistic",
    family="deoldify",
    description=_DESCRIPTION.format(name="artistic", encoder="ResNet-34", decoder="deep", nf_factor=1.5),
    variants=_variants(
        full=_ARTISTIC_FULL,
        compact={"backbone": "efficientnet-lite0", "decoder": "deep", "nf_factor": 0.75},
        tiny={
            "block": "basic",
            "depths": [1, 1, 1, 1],
            "widths": [8, 8, 16, 16],
            "stem_width": 8,
            "decoder": "deep",
            "nf_factor": 1.0,
        },
    ),
    working_size=256,
    paper=_PAPER,
    published_checkpoint="ColorizeArtistic_gen.pth",
)
def deoldify(backbone: str | None = None, **args) -> nn.Module:
    """The compact variants stand on a pretrained EfficientNet-Lite; tiny and full on their ResNet."""
    return DeOldifyPretrained(backbone, **args) if backbone else DeOldify(**args)


class DeOldify(ColorizationModel):
    """DeOldify's dynamic U-Net generator; ``state_dict`` keys follow the published fastai ``SequentialEx``.

    ``layers``: 0 ResNet encoder, 1 BatchNorm + 2 ReLU on its output, 3 middle convs (C -> 2C -> C),
    4..7 U-Net blocks (skips from layer3, layer2, layer1 and the stem, at 1/16 .. 1/2), 8 final pixel
    shuffle to full size, 9 concatenation of the input image, 10 residual block, 11 1x1 conv to RGB,
    12 sigmoid into ``y_range``. ``decoder="deep"`` (artistic) has two convs per block with widths
    ``nf_factor`` x their input; ``decoder="wide"`` (stable) has one conv per block, ``decoder_width x
    nf_factor / 2`` channels wide (half that in the last block). Self-attention sits in the second block.
    """

    def __init__(
        self,
        *,
        block: str = "basic",
        depths: Sequence[int] = RESNET_DEPTHS[34],
        widths: Sequence[int] = STANDARD_WIDTHS,
        stem_width: int = 64,
        decoder: str = "deep",
        nf_factor: float = 1.5,
        decoder_width: int = 512,
        self_attention: bool = True,
        blur: bool = True,
        bottle: bool = False,
        y_range: Sequence[float] = Y_RANGE,
    ) -> None:
        super().__init__()
        if decoder not in ("deep", "wide"):
            raise ValueError(f"decoder must be 'deep' or 'wide', got {decoder!r}")
        encoder = ResNetEncoder(block, depths, widths, stem_width, in_channels=3)
        # Skips are taken where the spatial size is about to change: after the stem ReLU and layer1..layer3.
        self.skip_indices = [i for i in range(len(encoder.strides) - 1) if encoder.strides[i] != encoder.strides[i + 1]]
        ch = encoder.out_channels
        middle = nn.Sequential(conv_block(ch, ch * 2, batchnorm=True), conv_block(ch * 2, ch, batchnorm=True))
        blocks: list[nn.Module] = []
        wide_nf = int(decoder_width * nf_factor)
        skips = list(reversed(self.skip_indices))
        for i, idx in enumerate(skips):
            final = i == len(skips) - 1
            attn = self_attention and i == len(skips) - 3
            unet_block: UnetBlockDeep | UnetBlockWide
            if decoder == "deep":
                unet_block = UnetBlockDeep(
                    ch, encoder.channels[idx], final=final, nf_factor=nf_factor, self_attention=attn, blur=blur
                )
            else:
                n_out = wide_nf // 2 if final else wide_nf
                unet_block = UnetBlockWide(ch, encoder.channels[idx], n_out, self_attention=attn, blur=blur)
            blocks.append(unet_block)
            ch = unet_block.out_channels
        self.layers = nn.ModuleList(
            [
                encoder,
                nn.BatchNorm2d(encoder.out_channels),
                nn.ReLU(),
                middle,
                *blocks,
                PixelShuffleUp(ch, weight_norm=True, blur=blur),
                DenseCross(),
                ResBlock(ch + 3, bottle=bottle),
                conv_block(ch + 3, 3, 1, activation=False),
                SigmoidRange(*y_range),
            ]
        )
        settle_spectral_norms_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet-normalised grey RGB (B, 3, H, W) -> ImageNet-normalised RGB (B, 3, H, W) in ``y_range``."""
        encoder, bn, relu, middle = self.layers[:4]
        *blocks, final_up, cross, res, head, squash = self.layers[4:]
        skips: list[torch.Tensor] = []
        h = x
        for i, child in enumerate(encoder.children()):
            h = child(h)
            if i in self.skip_indices:
                skips.append(h)
        h = middle(relu(bn(h)))  # (B, C, H/32, W/32)
        for unet_block, skip in zip(blocks, reversed(skips), strict=True):
            h = unet_block(h, skip)  # doubles the size: 1/16, 1/8, 1/4, 1/2
        h = cross(final_up(h), x)  # (B, C + 3, H, W)
        return squash(head(res(h)))

    def predict_ab(
        self,
        l: torch.Tensor,
        *,
        hint_ab: torch.Tensor | None = None,
        hint_mask: torch.Tensor | None = None,
        seed: int | None = None,
    ) -> torch.Tensor:
        """L (B, 1, H, W) in [0, 100] -> ab (B, 2, H, W): grey RGB in, colour RGB out, its chroma read in Lab."""
        h, w = l.shape[-2:]
        dtype = next(self.parameters()).dtype
        x = imagenet_normalize(l_to_gray_rgb_t(l.float()))  # (B, 3, H, W)
        pad_h, pad_w = (math.ceil(s / PAD_MULTIPLE) * PAD_MULTIPLE - s for s in (h, w))
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")  # (B, 3, H', W'), multiples of 32
        y = self(x.to(dtype))[..., :h, :w].float()  # (B, 3, H, W)
        rgb = imagenet_denormalize(y).clamp(0.0, 1.0)
        return rgb_to_lab_t(rgb)[:, 1:]  # (B, 2, H, W)

    def render(self, grey_rgb: torch.Tensor) -> torch.Tensor:
        """DeOldify's own inference step: RGB (B, 3, H, W) in [0, 1] -> RGB (B, 3, H, W) in [0, 1].

        The input is the grey picture as DeOldify makes it (Rec.601 luma replicated to RGB) at the render size,
        fed unpadded (odd intermediate sizes are matched inside, as fastai's U-Net does); the output is
        ImageNet-denormalised and clipped, as DeOldify's filter reads it before its 8-bit conversion.
        """
        dtype = next(self.parameters()).dtype
        y = self(imagenet_normalize(grey_rgb.float()).to(dtype)).float()  # (B, 3, H, W)
        return imagenet_denormalize(y).clamp(0.0, 1.0)


class DeOldifyPretrained(PretrainedColorizer):
    """DeOldify's U-Net generator on a pretrained EfficientNet-Lite encoder (ImageNet knowledge, as DeOldify's
    ResNets): two middle convs on the 1/32 map (C -> C, where DeOldify widens to 2C), U-Net blocks with the
    1/16, 1/8 and 1/4 skips (self-attention in the 1/8 block), two final pixel-shuffle upsamplings, the input
    concatenated, a residual block and a 1x1 conv to ImageNet-normalised RGB through sigmoid into
    ``y_range``; spectral norm on every decoder conv.
    """

    def __init__(
        self,
        backbone: str,
        *,
        decoder: str = "deep",
        nf_factor: float = 1.0,
        decoder_width: int = 64,
        y_range: Sequence[float] = Y_RANGE,
        **common: Any,
    ) -> None:
        super().__init__(backbone, **common)
        if decoder not in ("deep", "wide"):
            raise ValueError(f"decoder must be 'deep' or 'wide', got {decoder!r}")
        channels = self.encoder.channels
        ch = channels[32]
        self.middle = nn.Sequential(conv_block(ch, ch, batchnorm=True), conv_block(ch, ch, batchnorm=True))
        blocks: list[nn.Module] = []
        for stride in (16, 8, 4):
            attn = stride == 8
            block: UnetBlockDeep | UnetBlockWide
            if decoder == "deep":
                block = UnetBlockDeep(
                    ch, channels[stride], final=False, nf_factor=nf_factor, self_attention=attn, blur=True
                )
            else:
                block = UnetBlockWide(
                    ch, channels[stride], int(decoder_width * nf_factor), self_attention=attn, blur=True
                )
            blocks.append(block)
            ch = block.out_channels
        self.blocks = nn.ModuleList(blocks)
        self.up = nn.Sequential(PixelShuffleUp(ch, ch // 2), PixelShuffleUp(ch // 2, weight_norm=True))
        self.cross = DenseCross()
        self.res = ResBlock(ch // 2 + 3)
        self.head = nn.Sequential(conv_block(ch // 2 + 3, 3, 1, activation=False), SigmoidRange(*y_range))
        settle_spectral_norms_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet-normalised grey RGB (B, 3, H, W), multiples of 32 -> ImageNet-normalised RGB (B, 3, H, W)."""
        l = rgb_to_lab_t(imagenet_denormalize(x.float()).clamp(0.0, 1.0))[:, :1]  # (B, 1, H, W)
        features = self.encoder(l)
        h = self.middle(features[32])  # (B, C, H/32, W/32)
        for block, stride in zip(self.blocks, (16, 8, 4), strict=True):
            h = block(h, features[stride])  # 1/16, 1/8, 1/4
        h = self.cross(self.up(h), x.to(h.dtype))  # (B, C / 2 + 3, H, W)
        return self.head(self.res(h))

    def native_ab(self, l, hint_ab, hint_mask, seed):
        y = self(imagenet_normalize(l_to_gray_rgb_t(l.float())))  # (B, 3, H, W)
        return rgb_to_lab_t(imagenet_denormalize(y.float()).clamp(0.0, 1.0))[:, 1:]


# --------------------------------------------------------------------------------------------------------------
# Critic (for NoGAN training; not a served model)
# --------------------------------------------------------------------------------------------------------------


class DeOldifyCritic(nn.Module):
    """DeOldify's patch critic: spectral-norm convs with LeakyReLU(0.2), dropout, self-attention after the first
    downsampling of the body, and a 4x4 valid conv to one logit per patch.

    Input: RGB (B, 3, H, W) in the generator's ImageNet-normalised space (real photos or generator outputs);
    H and W at least 2 ** (n_blocks + 3) (64 px for the default 3 blocks). Output: (B, N) logits, one per
    patch (N = 13 x 13 at 256 px); the critic loss is binary cross-entropy with logits against 1 (real) or
    0 (generated) broadcast to every patch, and the generator's adversarial term is the same loss with the
    target 1. ``nf=256`` is DeOldify's colourisation critic; smaller widths suit small budgets.
    """

    def __init__(self, in_channels: int = 3, nf: int = 256, n_blocks: int = 3, dropout: float = 0.15) -> None:
        super().__init__()
        leaky = 0.2
        layers: list[nn.Module] = [
            conv_block(in_channels, nf, 4, stride=2, leaky=leaky, bias=True),
            nn.Dropout2d(dropout / 2),
        ]
        for i in range(n_blocks):
            layers += [
                conv_block(nf, nf, 3, leaky=leaky, bias=True),
                nn.Dropout2d(dropout),
                conv_block(nf, nf * 2, 4, stride=2, leaky=leaky, bias=True, self_attention=i == 0),
            ]
            nf *= 2
        layers += [
            conv_block(nf, nf, 3, leaky=leaky, bias=True),
            conv_block(nf, 1, 4, padding=0, bias=False, activation=False),
            nn.Flatten(),  # (B, 1, h, w) -> (B, h * w)
        ]
        self.layers = nn.Sequential(*layers)
        self.min_size = 2 ** (n_blocks + 3)
        settle_spectral_norms_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if min(x.shape[-2:]) < self.min_size:
            raise ValueError(f"the critic needs images of at least {self.min_size} px, got {tuple(x.shape[-2:])}")
        return self.layers(x)
