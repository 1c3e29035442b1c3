"""Plain-torch ResNet encoders (BasicBlock / Bottleneck) with configurable widths and depths."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

# Blocks per stage of the standard ResNets (He et al. 2016, "Deep Residual Learning for Image Recognition").
RESNET_DEPTHS: dict[int, tuple[int, int, int, int]] = {
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
}
RESNET_BLOCKS: dict[int, str] = {18: "basic", 34: "basic", 50: "bottleneck", 101: "bottleneck", 152: "bottleneck"}
STANDARD_WIDTHS = (64, 128, 256, 512)


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def _conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)


def _shortcut(cin: int, cout: int, stride: int) -> nn.Sequential | None:
    """Projection shortcut (1x1 conv + BN) where the residual changes shape, identity otherwise."""
    if stride == 1 and cin == cout:
        return None
    return nn.Sequential(_conv1x1(cin, cout, stride), nn.BatchNorm2d(cout))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (ResNet-18/34)."""

    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        cout = planes * self.expansion
        self.conv1 = _conv3x3(cin, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, cout)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = _shortcut(cin, cout, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carrying the stride, "ResNet v1.5"), 1x1 expand by 4, residual (ResNet-50/101/152)."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        cout = planes * self.expansion
        self.conv1 = _conv1x1(cin, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv1x1(planes, cout)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(cin, cout, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


BLOCKS: dict[str, type[BasicBlock] | type[Bottleneck]] = {"basic": BasicBlock, "bottleneck": Bottleneck}


class ResNetEncoder(nn.Sequential):
    """A ResNet without its pooling/classifier head, as the 8-child sequence U-Net builders index into.

    Children: 0 conv1 (7x7, stride 2), 1 bn1, 2 relu, 3 maxpool (3x3, stride 2), 4..7 layer1..layer4,
    so ``state_dict`` keys match a standard ResNet's (``0.weight``, ``4.0.conv1.weight``, ...). The output
    of child i has ``channels[i]`` channels at 1/``strides[i]`` of the input size (rounded up).
    """

    def __init__(
        self,
        block: str = "basic",
        depths: Sequence[int] = RESNET_DEPTHS[34],
        widths: Sequence[int] = STANDARD_WIDTHS,
        stem_width: int = 64,
        in_channels: int = 3,
    ) -> None:
        if block not in BLOCKS:
            raise ValueError(f"unknown ResNet block {block!r}; known: {', '.join(BLOCKS)}")
        if len(depths) != 4 or len(widths) != 4:
            raise ValueError(f"a ResNet has 4 stages; got depths {list(depths)} and widths {list(widths)}")
        block_cls = BLOCKS[block]
        stages: list[nn.Module] = []
        cin = stem_width
        stage_out: list[int] = []
        for i, (depth, planes) in enumerate(zip(depths, widths, strict=True)):
            stride = 1 if i == 0 else 2
            blocks: list[nn.Module] = []
            for j in range(depth):
                blocks.append(block_cls(cin, planes, stride if j == 0 else 1))
                cin = planes * block_cls.expansion
            stages.append(nn.Sequential(*blocks))
            stage_out.append(cin)
        super().__init__(
            nn.Conv2d(in_channels, stem_width, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(stem_width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),
            *stages,
        )
        self.channels: tuple[int, ...] = (stem_width,) * 4 + tuple(stage_out)
        self.strides: tuple[int, ...] = (2, 2, 2, 4, 4, 8, 16, 32)
        self.out_channels = stage_out[-1]
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        # Zero-init the last BN of each residual branch so every block starts as the identity (Goyal et al. 2017).
        for m in self.modules():
            if isinstance(m, BasicBlock):
                nn.init.zeros_(m.bn2.weight)
            elif isinstance(m, Bottleneck):
                nn.init.zeros_(m.bn3.weight)


def resnet_encoder(depth: int = 34, width_mult: float = 1.0, in_channels: int = 3) -> ResNetEncoder:
    """A standard ResNet-``depth`` encoder, optionally narrowed by ``width_mult`` (e.g. 0.25 for a compact one)."""
    if depth not in RESNET_DEPTHS:
        raise ValueError(f"no standard ResNet-{depth}; known depths: {', '.join(map(str, RESNET_DEPTHS))}")
    widths = [max(1, round(w * width_mult)) for w in STANDARD_WIDTHS]
    return ResNetEncoder(RESNET_BLOCKS[depth], RESNET_DEPTHS[depth], widths, widths[0], in_channels)
