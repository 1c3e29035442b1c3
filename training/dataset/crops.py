"""Cutting photos into square training crops at several scales, and whole validation photos.

Crop positions depend only on the seed and the photo, and every crop's inputs are summed up in a key, so a
rebuild reuses the crops an earlier build cut from the same photo with the same recipe, split and seed.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from training.dataset.files import save_image
from training.dataset.split import PHOTO_FOLDERS

VAL_PHOTO_SHORT_SIDE = 256


def photo_rng(seed: int, photo: str) -> random.Random:
    """The crop positions of one photo depend only on the seed and the photo, not on the order of work."""
    return random.Random(int.from_bytes(hashlib.sha256(f"{seed}:{photo}".encode()).digest()[:8], "big"))


@dataclass(frozen=True)
class CropRecipe:
    """How photos become square training crops at several scales."""

    size: int = 256  # crop side in pixels
    max_short_side: int = 1280  # photos are treated as if their short side were capped at this
    max_crops: int = 16  # per photo
    min_short_side: int = 192  # smaller photos are not used (upscaling them would teach blur)
    flat_std: float = 5.0  # a crop whose luminance std (0..255) is below this is re-sampled
    tries: int = 10  # positions tried per crop before it is dropped as flat
    format: str = "png"  # crop files: "png" (lossless) or "jpg" (quality 95, 4:4:4 chroma)

    def count(self, short_side: int) -> int:
        """About (capped short side / size)^2 crops, between 1 and ``max_crops``."""
        capped = min(short_side, self.max_short_side)
        return max(1, min(self.max_crops, round((capped / self.size) ** 2)))

    def sides(self, short_side: int) -> list[int]:
        """Crop sides in photo pixels, geometric from the whole short side down to 1:1 detail at the capped size."""
        finest = self.size * max(1.0, short_side / self.max_short_side)
        n = self.count(short_side)
        if n == 1 or short_side <= finest:
            return [short_side] * n
        ratio = finest / short_side
        return [max(1, round(short_side * ratio ** (i / (n - 1)))) for i in range(n)]


@dataclass(frozen=True)
class Crop:
    """One crop: pixels at recipe size, its box in photo pixels, and the scale (crop pixels per photo pixel)."""

    image: Image.Image
    box: tuple[int, int, int, int]
    scale: float
    luma_std: float


def luma_std(image: Image.Image) -> float:
    return float(np.asarray(image.convert("L"), dtype=np.float32).std())


def _cut(image: Image.Image, box: tuple[int, int, int, int], size: int) -> Image.Image:
    if box[2] - box[0] == size:
        return image.crop(box)
    return image.resize((size, size), Image.Resampling.LANCZOS, box=box, reducing_gap=3.0)


def make_crops(image: Image.Image, recipe: CropRecipe, rng: random.Random) -> tuple[list[Crop], int]:
    """Crops of an RGB photo following ``recipe``; returns (crops, number dropped as flat after every try).

    The first crop is the centred square of the whole short side (the whole photo shrunk to ``size``);
    the others are placed at random. A crop with nearly flat luminance is re-sampled elsewhere.
    """
    width, height = image.size
    crops: list[Crop] = []
    dropped = 0
    for index, side in enumerate(recipe.sides(min(width, height))):
        for attempt in range(recipe.tries):
            if index == 0 and attempt == 0:
                x, y = (width - side) // 2, (height - side) // 2
            else:
                x, y = rng.randint(0, width - side), rng.randint(0, height - side)
            box = (x, y, x + side, y + side)
            tile = _cut(image, box, recipe.size)
            std = luma_std(tile)
            if std >= recipe.flat_std:
                crops.append(Crop(tile, box, recipe.size / side, std))
                break
        else:
            dropped += 1
    return crops, dropped


def open_rgb(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return ImageOps.exif_transpose(image).convert("RGB")


@dataclass(frozen=True)
class CropJob:
    """Everything one worker needs to cut one photo (picklable)."""

    photo: str
    photo_path: Path
    split: str
    data_dir: Path
    recipe: CropRecipe
    seed: int
    val_photo: bool


def _val_photo(image: Image.Image, short_side: int = VAL_PHOTO_SHORT_SIDE) -> Image.Image:
    scale = short_side / min(image.size)
    if scale >= 1:
        return image
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def run_crop_job(job: CropJob) -> dict[str, Any]:
    """Cut and write one photo's crops (and its validation copy); returns their records (or the error)."""
    try:
        image = open_rgb(job.photo_path)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        return {"photo": job.photo, "error": f"cannot read the extracted photo: {exc}"}
    crops, dropped = make_crops(image, job.recipe, photo_rng(job.seed, job.photo))
    folder = job.data_dir / "crops" / job.split
    records = []
    for k, crop in enumerate(crops):
        rel = f"crops/{job.split}/{job.photo}_{k:02d}.{job.recipe.format}"
        save_image(crop.image, folder / Path(rel).name, job.recipe.format)
        records.append(
            {"file": rel, "box": list(crop.box), "scale": round(crop.scale, 5), "luma_std": round(crop.luma_std, 2)}
        )
    val_rel = None
    if job.val_photo:
        val_rel = f"{PHOTO_FOLDERS[job.split]}/{job.photo}.png"
        save_image(_val_photo(image), job.data_dir / val_rel, "png")
    return {"photo": job.photo, "crops": records, "dropped_flat": dropped, "val_photo": val_rel}


def run_crop_jobs(jobs: list[CropJob], workers: int) -> Iterator[dict[str, Any]]:
    """The results of ``run_crop_job`` in the order of ``jobs``, from a process pool when ``workers`` > 1."""
    if workers <= 1 or len(jobs) <= 1:
        yield from map(run_crop_job, jobs)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(run_crop_job, jobs)


def crop_key(photo_sha256: str, split: str, recipe: CropRecipe, seed: int) -> str:
    """A digest of everything a photo's crops depend on: equal keys, equal crops."""
    spec = {"photo": photo_sha256, "split": split, "recipe": asdict(recipe), "seed": seed, "val": VAL_PHOTO_SHORT_SIDE}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def reusable_crops(previous: Mapping[str, Any] | None, data_dir: Path) -> dict[str, tuple[dict, list[dict]]]:
    """Photo id -> (photo record, crop records) from the previous manifest, for photos whose files all exist."""
    if not previous:
        return {}
    crops_by_photo: dict[str, list[dict]] = {}
    for crop in previous.get("crops", []):
        crops_by_photo.setdefault(crop["photo"], []).append(crop)
    reusable = {}
    for photo in previous.get("photos", []):
        if photo.get("status") != "ok":
            continue
        crops = crops_by_photo.get(photo["id"], [])
        files = [c["file"] for c in crops] + ([photo["val_photo"]] if photo.get("val_photo") else [])
        if all((data_dir / f).is_file() for f in files):
            reusable[photo["id"]] = (photo, crops)
    return reusable
