"""Training data: crops from the dataset builder (or synthetic photos) as L / ab / RGB tensors, with augmentation."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset, DistributedSampler

from colorizers.color import rgb_to_lab_t

CROP_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
MANIFEST_NAME = "manifest.json"


@dataclass(frozen=True)
class Augment:
    """Random geometric augmentation, after the tutorial's Keras ``ImageDataGenerator``.

    The tutorial used ``shear_range=0.2, zoom_range=0.2, rotation_range=20, horizontal_flip=True``: a random
    horizontal flip, a rotation of up to 20 degrees either way, an independent zoom of each axis by a factor in
    [0.8, 1.2] and a shear (here an angle of up to 0.2 radians). Pixels that come from outside the image repeat
    the nearest edge pixel (Keras' default ``fill_mode="nearest"``). ``crop`` then takes a random square of that
    side (training on smaller squares is much faster and the models are fully convolutional).
    """

    flip: bool = True
    rotation_deg: float = 20.0
    zoom: float = 0.2
    shear: float = 0.2
    crop: int | None = None

    def theta(self, gen: torch.Generator) -> torch.Tensor:
        """A random affine map from output to input coordinates (normalised to [-1, 1]), tensor (2, 3)."""
        u = torch.rand(5, generator=gen, dtype=torch.float64)
        angle = math.radians(self.rotation_deg) * (2 * u[0].item() - 1)
        zx = 1 + self.zoom * (2 * u[1].item() - 1)
        zy = 1 + self.zoom * (2 * u[2].item() - 1)
        shear = self.shear * (2 * u[3].item() - 1)
        flip = -1.0 if self.flip and u[4].item() < 0.5 else 1.0
        cos, sin = math.cos(angle), math.sin(angle)
        rotation = torch.tensor([[cos, -sin], [sin, cos]], dtype=torch.float64)
        shearing = torch.tensor([[1.0, -math.sin(shear)], [0.0, math.cos(shear)]], dtype=torch.float64)
        scale = torch.diag(torch.tensor([zx * flip, zy], dtype=torch.float64))
        linear = rotation @ shearing @ scale  # (2, 2)
        return torch.cat([linear, torch.zeros(2, 1, dtype=torch.float64)], dim=1).float()  # (2, 3)

    def __call__(self, rgb: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """RGB (3, H, W) in [0, 1] -> augmented RGB (3, S, S), S = ``crop`` or the input size."""
        theta = self.theta(gen)[None]  # (1, 2, 3)
        grid = F.affine_grid(theta, [1, *rgb.shape], align_corners=False)  # (1, H, W, 2)
        out = F.grid_sample(rgb[None], grid, mode="bilinear", padding_mode="border", align_corners=False)[0]
        if self.crop is not None and self.crop < min(out.shape[-2:]):
            h, w = out.shape[-2:]
            top = int(torch.randint(0, h - self.crop + 1, (1,), generator=gen))
            left = int(torch.randint(0, w - self.crop + 1, (1,), generator=gen))
            out = out[:, top : top + self.crop, left : left + self.crop]
        return out.clamp(0.0, 1.0)


def sample_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """The random stream of one sample in one epoch: independent of worker count and order of loading."""
    digest = hashlib.sha256(f"{seed}:{epoch}:{index}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))


def lab_sample(rgb: torch.Tensor) -> dict[str, torch.Tensor]:
    """RGB (3, H, W) in [0, 1] -> {"rgb": (3, H, W), "l": (1, H, W) in [0, 100], "ab": (2, H, W) Lab units}."""
    lab = rgb_to_lab_t(rgb[None])[0]  # (3, H, W)
    return {"rgb": rgb, "l": lab[:1].contiguous(), "ab": lab[1:].contiguous()}


def resize(rgb: torch.Tensor, size: int) -> torch.Tensor:
    """RGB (3, H, W) -> (3, size, size), antialiased bilinear (no-op at that size)."""
    if tuple(rgb.shape[-2:]) == (size, size):
        return rgb
    out = F.interpolate(rgb[None], size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return out[0].clamp(0.0, 1.0)


def read_rgb(path: str | Path) -> torch.Tensor:
    """An image file -> RGB tensor (3, H, W) float32 in [0, 1]."""
    with Image.open(path) as image:
        array = np.asarray(image.convert("RGB"), dtype=np.uint8)  # (H, W, 3)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float() / 255.0  # (3, H, W)


def synthetic_rgb(index: int, size: int, seed: int = 0) -> torch.Tensor:
    """A deterministic smooth colourful picture (two gradients, a disc, a stripe), RGB (3, size, size) in [0, 1]."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + index)
    p = torch.rand(12, generator=gen)
    y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")  # (S, S) each
    r = 0.5 + 0.45 * torch.sin(x * (2 + 4 * p[0]) + 6 * p[1])
    g = 0.5 + 0.45 * torch.cos(y * (2 + 4 * p[2]) + 6 * p[3])
    b = 0.3 + 0.4 * (x * p[4] + y * (1 - p[4]))
    disc = ((x - p[5]) ** 2 + (y - p[6]) ** 2 < (0.1 + 0.2 * p[7]) ** 2).float()
    stripe = ((x * p[8] + y * (1 - p[8]) - p[9]).abs() < 0.05).float()
    rgb = torch.stack([r, g, b])  # (3, S, S)
    disc_colour = p[9:12].view(3, 1, 1)  # (3, 1, 1)
    rgb = rgb * (1 - disc) + disc_colour * disc
    rgb = rgb * (1 - stripe) + (1 - disc_colour) * stripe
    return rgb.clamp(0.0, 1.0)


class ColourDataset(Dataset):
    """Samples {"rgb", "l", "ab"} from a list of picture sources, optionally augmented.

    Each sample's augmentation is drawn from :func:`sample_generator` (seed, epoch, index), so a run is
    reproducible whatever the number of loader workers; call :meth:`set_epoch` at the start of each epoch.
    ``repeat`` presents the sources that many times per epoch (the single-image recipe uses it).
    """

    def __init__(
        self,
        size: int,
        *,
        augment: Augment | None = None,
        seed: int = 0,
        repeat: int = 1,
    ) -> None:
        self.size = size
        self.augment = augment
        self.seed = seed
        self.repeat = max(1, repeat)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def sources(self) -> int:
        raise NotImplementedError

    def load(self, index: int) -> torch.Tensor:
        """Source ``index`` as RGB (3, H, W) in [0, 1]."""
        raise NotImplementedError

    def __len__(self) -> int:
        return self.sources() * self.repeat

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rgb = resize(self.load(index % self.sources()), self.size)
        if self.augment is not None:
            rgb = self.augment(rgb, sample_generator(self.seed, self.epoch, index))
        return lab_sample(rgb)


class CropDataset(ColourDataset):
    """Crops written by ``python -m training dataset`` (``data/crops/{train,val}/``).

    Each crop is decoded and resized once, then kept in memory as 8-bit RGB at the training size (2,474 crops
    at 256 px take 490 MB; at 128 px, 120 MB), once per loader process: later epochs only augment.
    """

    def __init__(self, files: Sequence[str | Path], size: int, **kwargs) -> None:
        super().__init__(size, **kwargs)
        if not files:
            raise ValueError("no training pictures")
        self.files = [str(f) for f in files]
        self.cache: dict[int, torch.Tensor] = {}

    def sources(self) -> int:
        return len(self.files)

    def load(self, index: int) -> torch.Tensor:
        picture = self.cache.get(index)
        if picture is None:
            rgb = resize(read_rgb(self.files[index]), self.size)  # (3, size, size) in [0, 1]
            picture = self.cache[index] = (rgb * 255.0 + 0.5).to(torch.uint8)
        return picture.float() / 255.0


class SyntheticDataset(ColourDataset):
    """``count`` synthetic pictures (:func:`synthetic_rgb`): for tests and smoke runs without a dataset."""

    def __init__(self, count: int, size: int, *, picture_seed: int = 0, **kwargs) -> None:
        super().__init__(size, **kwargs)
        if count < 1:
            raise ValueError("a synthetic dataset needs at least one picture")
        self.count = count
        self.picture_seed = picture_seed

    def sources(self) -> int:
        return self.count

    def load(self, index: int) -> torch.Tensor:
        return synthetic_rgb(index, self.size, self.picture_seed)


def read_manifest(data_dir: str | Path) -> dict | None:
    """``data_dir/manifest.json`` as a dict, or None when there is none (or it cannot be read)."""
    try:
        manifest = json.loads((Path(data_dir) / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def list_crops(data_dir: str | Path, split: str) -> list[Path]:
    """A split's crop files, sorted: those the manifest lists (when it exists), else every picture in the folder."""
    data_dir = Path(data_dir)
    manifest = read_manifest(data_dir)
    if manifest and isinstance(manifest.get("crops"), list):
        files = [data_dir / c["file"] for c in manifest["crops"] if c.get("split") == split and "file" in c]
        return sorted(f for f in files if f.is_file())
    folder = data_dir / "crops" / split
    return sorted(p for p in folder.glob("*") if p.suffix.lower() in CROP_SUFFIXES) if folder.is_dir() else []


def spread(items: Sequence, count: int) -> list:
    """``count`` items evenly spaced through ``items`` (all of them when there are fewer)."""
    if len(items) <= count:
        return list(items)
    return [items[(i * len(items)) // count] for i in range(count)]


def stack(samples: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Samples -> one batch {"rgb": (B, 3, H, W), "l": (B, 1, H, W), "ab": (B, 2, H, W)}."""
    return {key: torch.stack([s[key] for s in samples]) for key in samples[0]}


class ResumableSampler(DistributedSampler):
    """``DistributedSampler`` that can start an epoch part-way through, so a resumed run skips what it has seen."""

    def __init__(self, dataset: Dataset, *, num_replicas: int, rank: int, seed: int) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=False)
        self.start = 0

    def set_start(self, start: int) -> None:
        """Skip the first ``start`` indices of the next epoch (this replica's share)."""
        self.start = max(0, start)

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        start, self.start = self.start, 0
        return iter(indices[start:])

    def __len__(self) -> int:
        return max(0, self.num_samples - self.start)
