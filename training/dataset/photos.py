"""The photo list (``training/train_photos.csv``) and the photos extracted from it into ``DATA_DIR/photos/``.

Reading a picture out of a package is ``training.extract``'s job; this module decides which rows to build and
keeps each extracted photo next to a JSON sidecar, so a later build finds it without opening the package again.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from training.dataset.fetch import FetchedPackage
from training.dataset.files import write_bytes
from training.extract import MemberReader, decode_photo

PHOTO_LIST = Path(__file__).parents[1] / "train_photos.csv"
LARGE_PACKAGES = ("enlightenment-data", "tuxpaint-stamps-default")


@dataclass(frozen=True)
class PhotoRow:
    """One line of the photo list: where a photo lives and under which licence."""

    registry: str
    package: str
    version: str  # as listed; Debian epochs may be written URL-quoted (4%3a22.12.3-1)
    extract: str
    member: str
    licence: str

    @property
    def id(self) -> str:
        return photo_id(self.package, self.member)

    @property
    def pinned(self) -> str:
        return urllib.parse.unquote(self.version)


def photo_id(package: str, member: str) -> str:
    """Stable, file-name-safe photo id: package, the picture's folder and stem, and a short digest of the path."""
    inner = PurePosixPath(member.split("!")[-1])
    words = f"{inner.parent.name}-{inner.stem}" if inner.parent.name else inner.stem
    slug = re.sub(r"[^a-z0-9]+", "-", words.lower()).strip("-")
    digest = hashlib.sha256(f"{package}:{member}".encode()).hexdigest()[:6]
    return f"{package}_{slug}_{digest}"


def load_photo_list(path: Path = PHOTO_LIST) -> list[PhotoRow]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = [PhotoRow(**{k: (v or "").strip() for k, v in line.items()}) for line in csv.DictReader(f)]
    seen: set[str] = set()
    unique = []
    for row in rows:
        if row.id not in seen:
            seen.add(row.id)
            unique.append(row)
    return unique


def select_rows(
    rows: Sequence[PhotoRow],
    *,
    packages: Iterable[str] | None = None,
    skip_large: bool = False,
    limit: int | None = None,
) -> tuple[list[PhotoRow], list[PhotoRow]]:
    """(rows to build, rows skipped as large); ``--packages`` filters first, then ``--skip-large``, then ``--limit``."""
    selected = list(rows)
    if packages:
        wanted = set(packages)
        unknown = wanted - {row.package for row in rows}
        if unknown:
            raise ValueError(f"not in the photo list: {', '.join(sorted(unknown))}")
        selected = [row for row in selected if row.package in wanted]
    skipped = [row for row in selected if skip_large and row.package in LARGE_PACKAGES]
    selected = [row for row in selected if not (skip_large and row.package in LARGE_PACKAGES)]
    if limit is not None:
        selected = selected[: max(0, limit)]
    return selected, skipped


def source(row: PhotoRow) -> dict[str, str]:
    """Where a photo comes from, as the sidecars and the manifest record it."""
    return {
        "registry": row.registry,
        "package": row.package,
        "version": row.pinned,
        "extract": row.extract,
        "member": row.member,
        "licence": row.licence,
    }


def cached_photo(photos_dir: Path, row: PhotoRow) -> dict[str, Any] | None:
    """The sidecar of a photo extracted by an earlier build, if it is still this row's and its file is there."""
    sidecar = photos_dir / f"{row.id}.json"
    try:
        info = json.loads(sidecar.read_text())
    except (OSError, ValueError):
        return None
    if info.get("member") != row.member or not (photos_dir / info.get("file", "")).is_file():
        return None
    return info


def extract_photo(row: PhotoRow, package: FetchedPackage, reader: MemberReader, photos_dir: Path) -> dict[str, Any]:
    """Write a row's photo and its sidecar into ``photos_dir``; returns the sidecar."""
    data = reader.read(row.extract, package.root, row.member)
    photo = decode_photo(data, row.extract)
    name = f"{row.id}.{photo.ext}"
    for stale in photos_dir.glob(f"{row.id}.*"):
        stale.unlink()
    write_bytes(photos_dir / name, photo.encoded)
    info = {
        "id": row.id,
        **source(row),
        "version_got": package.version,
        "file": name,
        "width": photo.image.width,
        "height": photo.image.height,
    }
    write_bytes(photos_dir / f"{row.id}.json", json.dumps(info, indent=1).encode())
    return info
