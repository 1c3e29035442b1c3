"""``python -m training dataset``: a build from the command line's options, and its summary for people."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from training.dataset.build import BuildResult, build_dataset
from training.dataset.config import BuildConfig
from training.dataset.crops import CropRecipe


def _folder_bytes(folder: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


def summary(result: BuildResult, config: BuildConfig) -> str:
    """A human summary of a build: counts, failures with reasons, sizes and time."""
    t = result.totals
    data_dir = Path(config.data_dir)
    lines = [
        f"dataset in {data_dir}/ (manifest sha256 {result.manifest['sha256']})",
        f"photos: {t['photos_listed']} listed, {t['photos_selected']} selected, {t['photos_ok']} got, "
        f"{t['photos_failed']} failed"
        + (f"; {t['photos_skipped']} skipped (--skip-large)" if t["photos_skipped"] else ""),
        f"split: {t['photos_train']} train, {t['photos_val']} validation by photo (val_photos/), "
        f"{t['photos_unseen']} of held-out packages (unseen_photos/)",
        f"crops: {t['crops_train']} train, {t['crops_val']} validation, {t['crops_unseen']} unseen "
        f"({t['crops_dropped_flat']} dropped as flat after {config.recipe.tries} tries)",
    ]
    failed = [p for p in result.manifest["photos"] if p["status"] == "failed"]
    if failed:
        lines.append("failed photos:")
        by_reason: dict[str, list[str]] = {}
        for photo in failed:
            by_reason.setdefault(photo["reason"], []).append(photo["id"])
        for reason, ids in sorted(by_reason.items(), key=lambda item: -len(item[1])):
            shown = ", ".join(ids[:3]) + (f" and {len(ids) - 3} more" if len(ids) > 3 else "")
            lines.append(f"  {len(ids)} x {reason}: {shown}")
    sizes = {
        "crops": _folder_bytes(data_dir / "crops"),
        "photos": _folder_bytes(data_dir / "photos"),
        "val_photos": _folder_bytes(data_dir / "val_photos"),
        "cache": _folder_bytes(config.cache),
    }
    lines.append("disk: " + ", ".join(f"{name} {_mb(size)}" for name, size in sizes.items()))
    lines.append(
        f"this run: {result.downloaded} packages downloaded, {result.extracted} photos extracted, "
        f"{result.cropped} photos cropped, {result.seconds:.1f} s"
    )
    return "\n".join(lines)


def config_from_args(args: argparse.Namespace) -> BuildConfig:
    packages = tuple(p.strip() for p in args.packages.split(",") if p.strip()) if args.packages else None
    recipe = CropRecipe(format=args.crop_format)
    return BuildConfig(
        data_dir=Path(args.data_dir),
        cache_dir=Path(args.cache_dir) if args.cache_dir else None,
        photo_list=Path(args.photo_list),
        limit=args.limit,
        packages=packages,
        skip_large=args.skip_large,
        seed=args.seed,
        val_fraction=args.val_fraction,
        workers=args.workers,
        recipe=recipe,
        progress=not args.no_progress,
    )


def main(args: argparse.Namespace) -> int:
    """``python -m training dataset``: returns the process exit status."""
    try:
        config = config_from_args(args)
        result = build_dataset(config)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summary(result, config))
    return 0 if result.totals["photos_ok"] or not result.totals["photos_selected"] else 1
