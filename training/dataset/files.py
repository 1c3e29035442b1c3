"""Atomic writes, digests and clean-up of the data set's files.

A build can be interrupted at any point and run again, so a half-written file must never carry its final name.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from PIL import Image


def write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def save_image(image: Image.Image, path: Path, fmt: str) -> None:
    """Write a picture as ``png`` (lossless) or ``jpg`` (quality 95, 4:4:4 chroma), atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    if fmt == "jpg":
        image.save(tmp, format="JPEG", quality=95, subsampling=0)
    else:
        image.save(tmp, format="PNG", icc_profile=None)  # pixels are sRGB already
    os.replace(tmp, path)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def prune(folder: Path, keep: set[Path]) -> int:
    """Delete the files directly in ``folder`` that are not in ``keep``; returns how many went."""
    removed = 0
    if folder.is_dir():
        for path in folder.iterdir():
            if path.is_file() and path not in keep:
                path.unlink()
                removed += 1
    return removed
