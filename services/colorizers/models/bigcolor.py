"""BigColor (Kim et al., ECCV 2022): a grey-image encoder feeding a BigGAN-style conditional generator."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

from colorizers.color import L_MAX, rgb_to_lab_t
from colorizers.models.base import ColorizationModel
from colorizers.models.pretrained import PretrainedColorizer, upsample_to
from colorizers.registry import register_model

PAPER = (
    'G. Kim, K. Kang, S. Kim, H. Lee, S. Kim, J. Kim, S.-H. Baek, S. Cho, "BigColor: Colorization using a '
    'Generative Color Prior for Natural Images" (ECCV 2022)'
)

Z_DIM = 119  # BigColor's noise size
Z_STD = 0.8  # z ~ N(0, 0.8^2) at training and inference
DEFAULT_SEED = 0  # seed used when predict_ab is given none, so results are repeatable


def _pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Replicate-pad the bottom/right edges so H and W are multiples of ``multiple``."""
    pad_h, pad_w = -x.shape[-2] % multiple, -x.shape[-1] % multiple
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
    return x


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm without its own affine; gain ``1 + W_g c`` and bias ``W_b c`` come from a conditioning vector."""

    def __init__(self, channels: int, cond_dim: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.gain = nn.Linear(cond_dim, channels, bias=False)
        self.bias = nn.Linear(cond_dim, channels, bias=False)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        gain = 1 + self.gain(cond)[:, :, None, None]  # (B, C) -> (B, C, 1, 1)
        bias = self.bias(cond)[:, :, None, None]  # (B, C) -> (B, C, 1, 1)
        return self.norm(x) * gain + bias


class EncoderBlock(nn.Module):
    """Pre-activation residual block (BN-ReLU-[avg-pool]-conv-BN-ReLU-conv) with a 1x1 (pooled) shortcut."""

    def __init__(self, cin: int, cout: int, down: bool) -> None:
        super().__init__()
        self.down = down
        self.norm1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.shortcut = nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.norm1(x))
        if self.down:
            h, x = F.avg_pool2d(h, 2), F.avg_pool2d(x, 2)
        h = self.conv2(F.relu(self.norm2(self.conv1(h))))
        return h + self.shortcut(x)


class GeneratorBlock(nn.Module):
    """BigGAN up-block: cBN-ReLU-up-conv-cBN-ReLU-conv, plus an up-sampled 1x1 shortcut."""

    def __init__(self, cin: int, cout: int, cond_dim: int) -> None:
        super().__init__()
        self.norm1 = ConditionalBatchNorm2d(cin, cond_dim)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2 = ConditionalBatchNorm2d(cout, cond_dim)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.shortcut = nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = F.interpolate(F.relu(self.norm1(x, cond)), scale_factor=2, mode="nearest")
        h = self.conv2(F.relu(self.norm2(self.conv1(h), cond)))
        # 1x1 conv and nearest upsampling commute: convolve at the low resolution, then upsample (4x cheaper).
        return h + F.interpolate(self.shortcut(x), scale_factor=2, mode="nearest")


@register_model(
    "bigcolor",
    family="bigcolor",
    description="BigColor: an encoder maps the grey photo to a 1/16-resolution feature that a BigGAN-style "
    "generator, conditioned on a global embedding and noise z, turns into colour; a seed picks the colours.",
    variants={
        "tiny": {"enc_widths": (4, 8, 8, 16, 16), "gen_widths": (16, 8, 8, 4, 4), "embed_dim": 8},
        "compact": {"backbone": "efficientnet-lite0", "gen_widths": (128, 96, 64), "embed_dim": 128},
    },
    working_size=256,
    supports_seed=True,
    paper=PAPER,
)
def bigcolor(backbone: str | None = None, **args) -> nn.Module:
    """The compact variant is conditioned on the pretrained classifier; tiny trains its own encoder."""
    return BigColorPretrained(backbone, **args) if backbone else BigColor(**args)


class BigColor(ColorizationModel):
    """Encoder E + conditional generator G; native output RGB in [-1, 1] (tanh), as the paper's generator.

    * E: a 3x3 stem then residual blocks, each halving the resolution: L (B, 1, H, W) -> f (B, e, H/16, W/16)
      (BigColor's spatial feature is 16x16 for a 256x256 input).
    * global embedding: f averaged over space and projected to ``embed_dim``; it replaces the ImageNet class
      embedding that BigColor takes from a classifier's top-1 class (this project has no class labels).
    * G: ``len(gen_widths) - 1`` BigGAN residual up-blocks back to H x W, each with class-conditional BatchNorm
      driven by [embedding, its chunk of z] (z split hierarchically over the blocks, as in BigGAN), then
      BN-ReLU-conv3x3-tanh to RGB.

    ``predict_ab`` takes the ab of that RGB (BigColor fuses the predicted chroma with the input L the same way).
    One z is shared by every image of a batch, so a seed means the same "colour draw" for each image.
    """

    stride = 16

    def __init__(
        self,
        enc_widths: Sequence[int] = (16, 32, 64, 128, 128),
        gen_widths: Sequence[int] = (128, 96, 64, 32, 16),
        embed_dim: int = 64,
        z_dim: int = Z_DIM,
        z_std: float = Z_STD,
    ) -> None:
        super().__init__()
        if len(enc_widths) != 5 or len(gen_widths) != 5:
            raise ValueError("enc_widths and gen_widths need 5 entries each (4 resolution steps of 2)")
        self.z_dim, self.z_std = z_dim, z_std
        self.stem = nn.Conv2d(1, enc_widths[0], 3, padding=1)
        self.encoder = nn.ModuleList(EncoderBlock(cin, cout, down=True) for cin, cout in pairwise(enc_widths))
        self.enc_out = nn.Sequential(nn.BatchNorm2d(enc_widths[-1]), nn.ReLU(True))
        self.to_generator = nn.Conv2d(enc_widths[-1], gen_widths[0], 1)
        self.embed = nn.Linear(enc_widths[-1], embed_dim)
        n_blocks = len(gen_widths) - 1
        self.z_chunks = [len(c) for c in torch.arange(z_dim).tensor_split(n_blocks)]
        self.generator = nn.ModuleList(
            GeneratorBlock(cin, cout, embed_dim + zc)
            for (cin, cout), zc in zip(pairwise(gen_widths), self.z_chunks, strict=True)
        )
        self.to_rgb = nn.Sequential(
            nn.BatchNorm2d(gen_widths[-1]), nn.ReLU(True), nn.Conv2d(gen_widths[-1], 3, 3, padding=1), nn.Tanh()
        )

    def sample_z(self, batch: int = 1, seed: int | None = None) -> torch.Tensor:
        """Noise (batch, z_dim) ~ N(0, z_std^2): from ``torch.Generator().manual_seed(seed)``, or the global RNG."""
        gen = None if seed is None else torch.Generator().manual_seed(seed)
        return torch.randn(batch, self.z_dim, generator=gen) * self.z_std

    def encode(self, l: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """L (B, 1, H, W), H and W multiples of 16 -> (feature (B, g0, H/16, W/16), embedding (B, embed_dim))."""
        x = self.stem(l / L_MAX)
        for block in self.encoder:
            x = block(x)
        x = self.enc_out(x)
        return self.to_generator(x), self.embed(x.mean(dim=(2, 3)))  # (B, e, h, w) -> (B, e) -> (B, embed_dim)

    def forward(self, l: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        """L (B, 1, H, W) in [0, 100] and z (B or 1, z_dim) -> RGB (B, 3, H, W) in [-1, 1]; z drawn if None."""
        dtype = self.stem.weight.dtype
        h, w = l.shape[-2:]
        feat, emb = self.encode(_pad_to_multiple(l.to(dtype), self.stride))
        if z is None:
            z = self.sample_z(l.shape[0])
        z = z.to(device=feat.device, dtype=dtype).expand(l.shape[0], -1)  # (1 or B, z_dim) -> (B, z_dim)
        x = feat
        for block, z_part in zip(self.generator, z.split(self.z_chunks, dim=1), strict=True):
            x = block(x, torch.cat([emb, z_part], dim=1))  # cond (B, embed_dim + chunk)
        return self.to_rgb(x)[..., :h, :w]

    def predict_ab(
        self,
        l: torch.Tensor,
        *,
        hint_ab: torch.Tensor | None = None,
        hint_mask: torch.Tensor | None = None,
        seed: int | None = None,
    ) -> torch.Tensor:
        z = self.sample_z(1, DEFAULT_SEED if seed is None else seed)  # (1, z_dim), shared by the batch
        rgb = (self.forward(l, z).float() + 1) / 2  # [-1, 1] -> [0, 1]
        return rgb_to_lab_t(rgb.clamp(0, 1))[:, 1:]


class BigColorPretrained(PretrainedColorizer):
    """BigColor on a pretrained classifier: the encoder's 1/32 map feeds BigGAN up-blocks whose conditional
    BatchNorm is driven by [class embedding, a chunk of z]; the class embedding is a learned projection of the
    classifier's ImageNet class probabilities (BigColor's class condition, made soft). Each up-block also adds
    the encoder's skip at its resolution (1/16, 1/8, 1/4: BigColor's spatial feature), then BN-ReLU-conv-tanh
    gives RGB at 1/4, upsampled. ``forward(l, z)`` -> RGB in [-1, 1]; a seed picks z, so the colours.
    """

    def __init__(
        self,
        backbone: str,
        gen_widths: Sequence[int] = (128, 96, 64),
        embed_dim: int = 128,
        z_dim: int = Z_DIM,
        z_std: float = Z_STD,
        **common: Any,
    ) -> None:
        super().__init__(backbone, **common)
        channels = self.encoder.channels
        self.z_dim, self.z_std = z_dim, z_std
        self.embed = nn.Linear(1000, embed_dim)
        self.stem = nn.Conv2d(channels[32], gen_widths[0], 1)
        self.z_chunks = [len(c) for c in torch.arange(z_dim).tensor_split(len(gen_widths))]
        widths = [*gen_widths, gen_widths[-1]]
        self.generator = nn.ModuleList(
            GeneratorBlock(cin, cout, embed_dim + zc)
            for (cin, cout), zc in zip(pairwise(widths), self.z_chunks, strict=True)
        )
        self.skips = nn.ModuleList(
            nn.Conv2d(channels[s], cout, 1) for s, cout in zip((16, 8, 4), widths[1:], strict=True)
        )
        self.to_rgb = nn.Sequential(
            nn.BatchNorm2d(widths[-1]), nn.ReLU(True), nn.Conv2d(widths[-1], 3, 3, padding=1), nn.Tanh()
        )

    def sample_z(self, batch: int = 1, seed: int | None = None) -> torch.Tensor:
        """Noise (batch, z_dim) ~ N(0, z_std^2): from ``torch.Generator().manual_seed(seed)``, or the global RNG."""
        gen = None if seed is None else torch.Generator().manual_seed(seed)
        return torch.randn(batch, self.z_dim, generator=gen) * self.z_std

    def forward(self, l: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        """L (B, 1, H, W), multiples of 32, and z (B or 1, z_dim) -> RGB (B, 3, H, W) in [-1, 1]."""
        features = self.encoder(l)
        dtype = self.stem.weight.dtype
        classes = self.embed(torch.softmax(features["logits"].to(dtype), dim=1))  # (B, embed_dim)
        if z is None:
            z = self.sample_z(l.shape[0])
        z = z.to(device=l.device, dtype=dtype).expand(l.shape[0], -1)  # (B, z_dim)
        x = self.stem(features[32])  # (B, g0, H/32, W/32)
        for block, skip, stride, z_part in zip(
            self.generator, self.skips, (16, 8, 4), z.split(self.z_chunks, 1), strict=True
        ):
            x = block(x, torch.cat([classes, z_part], dim=1)) + skip(features[stride])  # doubles the size
        return upsample_to(self.to_rgb(x), l)  # (B, 3, H/4, W/4) -> (B, 3, H, W)

    def native_ab(self, l, hint_ab, hint_mask, seed):
        z = self.sample_z(1, DEFAULT_SEED if seed is None else seed)  # (1, z_dim), shared by the batch
        rgb = (self.forward(l, z).float() + 1) / 2  # [-1, 1] -> [0, 1]
        return rgb_to_lab_t(rgb.clamp(0, 1))[:, 1:]


class DiscriminatorBlock(nn.Module):
    """BigGAN down-block with spectral norm: [ReLU]-conv-ReLU-conv-[avg-pool], plus a 1x1 (pooled) shortcut."""

    def __init__(self, cin: int, cout: int, down: bool = True, preactivation: bool = True) -> None:
        super().__init__()
        self.down, self.preactivation = down, preactivation
        self.conv1 = spectral_norm(nn.Conv2d(cin, cout, 3, padding=1))
        self.conv2 = spectral_norm(nn.Conv2d(cout, cout, 3, padding=1))
        self.shortcut = spectral_norm(nn.Conv2d(cin, cout, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(x) if self.preactivation else x
        h = self.conv2(F.relu(self.conv1(h)))
        if self.down:
            h = F.avg_pool2d(h, 2)
        if self.preactivation:
            s = self.shortcut(x)
            return h + (F.avg_pool2d(s, 2) if self.down else s)
        return h + self.shortcut(F.avg_pool2d(x, 2) if self.down else x)


class BigColorDiscriminator(nn.Module):
    """Projection discriminator (Miyato & Koyama 2018) with spectral norm, for BigColor's adversarial loss.

    Input: RGB (B, 3, H, W) in [-1, 1]. Score = linear(sum-pooled features) + <proj(cond), features> when
    ``cond_dim`` > 0 (``cond`` is, for instance, the generator's global embedding, detached).
    """

    def __init__(self, widths: Sequence[int] = (32, 64, 128, 256), cond_dim: int = 0, in_channels: int = 3) -> None:
        super().__init__()
        chans = (in_channels, *widths)
        self.blocks = nn.Sequential(
            *(
                DiscriminatorBlock(cin, cout, down=True, preactivation=i > 0)
                for i, (cin, cout) in enumerate(pairwise(chans))
            ),
            DiscriminatorBlock(widths[-1], widths[-1], down=False),
        )
        self.linear = spectral_norm(nn.Linear(widths[-1], 1))
        self.projection = spectral_norm(nn.Linear(cond_dim, widths[-1], bias=False)) if cond_dim > 0 else None

    def forward(self, rgb: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        h = F.relu(self.blocks(rgb)).sum(dim=(2, 3))  # (B, C, h, w) -> (B, C)
        out = self.linear(h).squeeze(1)  # (B, 1) -> (B,)
        if self.projection is not None:
            if cond is None:
                raise ValueError("this discriminator is conditional: pass cond")
            out = out + (self.projection(cond) * h).sum(dim=1)
        return out
