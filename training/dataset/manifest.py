"""The manifest (``DATA_DIR/manifest.json``): the selection, the recipe, every photo and crop, and its own hash.

Its bytes depend only on the inputs (photo list, selection, recipe, seed, split rule) and are laid out in photo
list order, never in the order work finished, so a rebuild with nothing to do writes the same file again and its
``sha256`` names the data set.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from training.dataset.config import BuildConfig
from training.dataset.crops import VAL_PHOTO_SHORT_SIDE
from training.dataset.files import file_sha256, write_bytes
from training.dataset.photos import PhotoRow, source

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1
SPLIT_RULE = (
    "photos of unseen_packages are 'unseen'; of the rest, sha256(photo id) as a fraction of "
    "2**64 below val_fraction is 'val'"
)


@dataclass
class Outcomes:
    """What a build made of the selected photos, by photo id: manifest records of the usable ones, or why not."""

    photos: dict[str, dict[str, Any]] = field(default_factory=dict)
    crops: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)


def make_manifest(
    config: BuildConfig, listed: int, selected: Sequence[PhotoRow], skipped: Sequence[PhotoRow], outcomes: Outcomes
) -> dict[str, Any]:
    """The manifest of a build of ``selected`` out of ``listed`` photos, ``sha256`` included."""
    photos = []
    for row in selected:
        if row.id in outcomes.photos:
            photos.append(outcomes.photos[row.id])
        else:
            reason = outcomes.failures.get(row.id, "not extracted")
            photos.append({"id": row.id, **source(row), "status": "failed", "reason": reason})
    photos += [{"id": row.id, **source(row), "status": "skipped", "reason": "--skip-large"} for row in skipped]
    crops = [crop for row in selected for crop in outcomes.crops.get(row.id, [])]
    manifest: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "photo_list_sha256": file_sha256(Path(config.photo_list)),
        "selection": {
            "packages": sorted(config.packages) if config.packages else None,
            "skip_large": config.skip_large,
            "limit": config.limit,
        },
        "recipe": {**asdict(config.recipe), "seed": config.seed, "val_fraction": config.val_fraction},
        "val_photo_short_side": VAL_PHOTO_SHORT_SIDE,
        "unseen_packages": sorted(config.unseen_packages),
        "split_rule": SPLIT_RULE,
        "totals": _totals(listed, len(selected), len(skipped), photos, crops),
        "photos": photos,
        "crops": crops,
    }
    manifest["sha256"] = manifest_sha256(manifest)
    return manifest


def _totals(listed: int, selected: int, skipped: int, photos: list[dict], crops: list[dict]) -> dict[str, int]:
    ok = [p for p in photos if p["status"] == "ok"]
    return {
        "photos_listed": listed,
        "photos_selected": selected,
        "photos_ok": len(ok),
        "photos_failed": sum(p["status"] == "failed" for p in photos),
        "photos_skipped": skipped,
        "photos_train": sum(p["split"] == "train" for p in ok),
        "photos_val": sum(p["split"] == "val" for p in ok),
        "photos_unseen": sum(p["split"] == "unseen" for p in ok),
        "crops_train": sum(c["split"] == "train" for c in crops),
        "crops_val": sum(c["split"] == "val" for c in crops),
        "crops_unseen": sum(c["split"] == "unseen" for c in crops),
        "crops_dropped_flat": sum(p.get("dropped_flat", 0) for p in ok),
    }


def manifest_sha256(manifest: Mapping[str, Any]) -> str:
    """SHA-256 of the manifest's canonical JSON (sorted keys, no whitespace), leaving out its own ``sha256``."""
    body = {key: value for key, value in manifest.items() if key != "sha256"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def load_manifest(data_dir: Path) -> dict[str, Any] | None:
    path = Path(data_dir) / MANIFEST_NAME
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and manifest.get("format") == MANIFEST_FORMAT else None


def write_manifest(data_dir: Path, manifest: Mapping[str, Any]) -> Path:
    path = Path(data_dir) / MANIFEST_NAME
    write_bytes(path, (json.dumps(manifest, indent=1, ensure_ascii=False) + "\n").encode("utf-8"))
    return path
