"""Which split a photo belongs to: whole held-out packages are ``unseen``, the rest ``val`` or ``train`` by hash."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

# Whole source packages held out of training: kinds of photos (people, interiors, streets, food, scene text)
# the training packages barely show, so their score measures generalisation to unseen sources.
UNSEEN_PACKAGES = (
    "opencv-doc", "hugin-data", "scikit-image", "matplotlib", "mahotas", "scribus-template",
    "palapeli-data", "libjxl-testdata", "scikit-learn", "imgaug",
)
# Splits whose whole photos are kept (short side 256) for photo-level evaluation, and where.
PHOTO_FOLDERS = {"val": "val_photos", "unseen": "unseen_photos"}
SPLITS = ("train", "val", "unseen")


def split_of(photo: str, val_fraction: float, package: str = "", unseen_packages: Sequence[str] = ()) -> str:
    """``"unseen"`` for a held-out package, else ``"val"`` or ``"train"`` from a hash of the photo id.

    The hash makes the split stable across runs, seeds and selections.
    """
    if package in unseen_packages:
        return "unseen"
    position = int.from_bytes(hashlib.sha256(photo.encode()).digest()[:8], "big") / 2**64
    return "val" if position < val_fraction else "train"


def split_folders(data_dir: Path) -> list[Path]:
    """The folders a build writes per split: crops of every split, whole photos of the evaluation splits."""
    return [data_dir / "crops" / split for split in SPLITS] + [data_dir / name for name in PHOTO_FOLDERS.values()]
