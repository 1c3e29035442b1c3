"""The student project's "CNN": a five-level strided-conv U-Net from grey to RGB at 160x160 (after Zhang et al.)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from colorizers.color import L_MAX, rgb_to_lab_t
from colorizers.models.base import ColorizationModel
from colorizers.models.pretrained import PretrainedColorizer
from colorizers.registry import register_model

FULL_WIDTHS = (128, 128, 256, 512, 512)
STRIDE = 32  # five stride-2 levels


def _pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Replicate-pad the bottom/right edges so H and W are multiples of ``multiple``."""
    pad_h, pad_w = -x.shape[-2] % multiple, -x.shape[-1] % multiple
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
    return x


class Down(nn.Sequential):
    """3x3 stride-2 convolution, optional BatchNorm, LeakyReLU."""

    def __init__(self, cin: int, cout: int, batch_norm: bool, negative_slope: float) -> None:
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, stride=2, padding=1)]
        if batch_norm:
            layers.append(nn.BatchNorm2d(cout))
        layers.append(nn.LeakyReLU(negative_slope, inplace=True))
        super().__init__(*layers)


class Up(nn.Sequential):
    """3x3 stride-2 transposed convolution (exactly doubles H and W), LeakyReLU."""

    def __init__(self, cin: int, cout: int, negative_slope: float) -> None:
        super().__init__(
            nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1),
            nn.LeakyReLU(negative_slope, inplace=True),
        )


@register_model(
    "coloria-cnn",
    family="coloria",
    description='The student project\'s "CNN": five strided conv downs (BatchNorm on the last three), five '
    "transposed-conv ups with skip concatenation, a 2x2 conv to RGB; 160x160.",
    variants={
        "tiny": {"widths": (8, 8, 16, 32, 32)},
        "compact": {"backbone": "efficientnet-lite0", "widths": (32, 32, 64, 128, 128)},
        "full": {"widths": FULL_WIDTHS},
    },
    working_size=160,
    paper='Student project "CNN" colouriser (after R. Zhang, P. Isola, A. A. Efros, "Colorful Image Colorization", '
    "ECCV 2016), trained with MAE and Adam (lr 1e-3)",
)
def coloria_cnn(backbone: str | None = None, **args) -> nn.Module:
    """The compact variant's down path is the pretrained encoder; tiny and full learn their own."""
    return ColoriaPretrained(backbone, **args) if backbone else ColoriaCNN(**args)


class ColoriaCNN(ColorizationModel):
    """U-Net on L / 100: ``forward`` returns RGB in [0, 1] (sigmoid); ``predict_ab`` converts it to Lab ab.

    * down1..down5: 3x3 stride-2 convs to ``widths`` (128, 128, 256, 512, 512 in full), BatchNorm on down3..down5,
      LeakyReLU (slope 0.3);
    * up1..up4: 3x3 stride-2 transposed convs back to widths[3], widths[2], widths[1], widths[0], each
      concatenated with the down output of the same resolution; up5 gives 3 channels, concatenated with the input;
    * out: 2x2 'same' conv (padded right/bottom) to RGB, then sigmoid.
    """

    def __init__(self, widths: Sequence[int] = FULL_WIDTHS, negative_slope: float = 0.3) -> None:
        super().__init__()
        if len(widths) != 5:
            raise ValueError("widths needs 5 entries")
        w = tuple(widths)
        self.down1 = Down(1, w[0], False, negative_slope)
        self.down2 = Down(w[0], w[1], False, negative_slope)
        self.down3 = Down(w[1], w[2], True, negative_slope)
        self.down4 = Down(w[2], w[3], True, negative_slope)
        self.down5 = Down(w[3], w[4], True, negative_slope)
        self.up1 = Up(w[4], w[3], negative_slope)
        self.up2 = Up(2 * w[3], w[2], negative_slope)
        self.up3 = Up(2 * w[2], w[1], negative_slope)
        self.up4 = Up(2 * w[1], w[0], negative_slope)
        self.up5 = Up(2 * w[0], 3, negative_slope)
        self.out = nn.Conv2d(3 + 1, 3, 2)

    def forward(self, l: torch.Tensor) -> torch.Tensor:
        """L (B, 1, H, W) in [0, 100] -> RGB (B, 3, H, W) in [0, 1]; any H, W (padded to a multiple of 32 inside)."""
        h, w = l.shape[-2:]
        x = _pad_to_multiple(l.to(self.out.weight.dtype) / L_MAX, STRIDE)
        d1 = self.down1(x)  # 1/2
        d2 = self.down2(d1)  # 1/4
        d3 = self.down3(d2)  # 1/8
        d4 = self.down4(d3)  # 1/16
        d5 = self.down5(d4)  # 1/32
        u = torch.cat([self.up1(d5), d4], dim=1)  # (B, 2 * w3, H/16, W/16)
        u = torch.cat([self.up2(u), d3], dim=1)  # (B, 2 * w2, H/8, W/8)
        u = torch.cat([self.up3(u), d2], dim=1)  # (B, 2 * w1, H/4, W/4)
        u = torch.cat([self.up4(u), d1], dim=1)  # (B, 2 * w0, H/2, W/2)
        u = torch.cat([self.up5(u), x], dim=1)  # (B, 3 + 1, H, W)
        rgb = torch.sigmoid(self.out(F.pad(u, (0, 1, 0, 1))))  # 2x2 'same': pad right/bottom by one
        return rgb[..., :h, :w]

    def predict_ab(
        self,
        l: torch.Tensor,
        *,
        hint_ab: torch.Tensor | None = None,
        hint_mask: torch.Tensor | None = None,
        seed: int | None = None,
    ) -> torch.Tensor:
        return rgb_to_lab_t(self.forward(l).float())[:, 1:]


class ColoriaPretrained(PretrainedColorizer):
    """The student project's U-Net with the pretrained encoder as its five-level down path: transposed-conv ups
    concatenated with the encoder's 1/16, 1/8, 1/4 maps (each first squeezed to ``widths`` by a 1x1 conv), then
    to 1/2 and full size, the input concatenated, a 2x2 conv to RGB, sigmoid. Trained with MAE on RGB."""

    def __init__(
        self,
        backbone: str,
        widths: Sequence[int] = (32, 32, 64, 128, 128),
        negative_slope: float = 0.3,
        **common: Any,
    ) -> None:
        super().__init__(backbone, **common)
        if len(widths) != 5:
            raise ValueError("widths needs 5 entries")
        w, ch = tuple(widths), self.encoder.channels
        self.squeeze = nn.ModuleDict({str(s): nn.Conv2d(ch[s], w[i], 1) for i, s in ((4, 32), (3, 16), (2, 8), (1, 4))})
        self.up1 = Up(w[4], w[3], negative_slope)
        self.up2 = Up(2 * w[3], w[2], negative_slope)
        self.up3 = Up(2 * w[2], w[1], negative_slope)
        self.up4 = Up(2 * w[1], w[0], negative_slope)
        self.up5 = Up(w[0], 3, negative_slope)
        self.out = nn.Conv2d(3 + 1, 3, 2)

    def forward(self, l: torch.Tensor) -> torch.Tensor:
        """L (B, 1, H, W), multiples of 32 -> RGB (B, 3, H, W) in [0, 1]."""
        f = {k: v for k, v in self.encoder(l).items() if isinstance(k, int)}
        s = {stride: self.squeeze[str(stride)](f[stride].to(self.out.weight.dtype)) for stride in f}
        u = torch.cat([self.up1(s[32]), s[16]], dim=1)  # (B, 2 * w3, H/16, W/16)
        u = torch.cat([self.up2(u), s[8]], dim=1)  # (B, 2 * w2, H/8, W/8)
        u = torch.cat([self.up3(u), s[4]], dim=1)  # (B, 2 * w1, H/4, W/4)
        u = self.up5(self.up4(u))  # (B, 3, H, W)
        u = torch.cat([u, l.to(u.dtype) / L_MAX], dim=1)  # (B, 3 + 1, H, W)
        return torch.sigmoid(self.out(F.pad(u, (0, 1, 0, 1))))  # 2x2 'same': pad right/bottom by one

    def native_ab(self, l, hint_ab, hint_mask, seed):
        return rgb_to_lab_t(self.forward(l).float())[:, 1:]
