"""Training dataset builder: fetch the listed packages, extract the photos, cut 256x256 crops, split by photo."""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from PIL import Image, ImageOps
from tqdm import tqdm

from training.extract import ExtractError, MemberReader, decode_photo

PHOTO_LIST = Path(__file__).with_name("train_photos.csv")
LARGE_PACKAGES = ("enlightenment-data", "tuxpaint-stamps-default")
MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1
VAL_PHOTO_SHORT_SIDE = 256
COMMAND_TIMEOUT_S = 1800


# --- the photo list -------------------------------------------------------------------------------------------------


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


# --- the split and the crop recipe ----------------------------------------------------------------------------------


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


def _save(image: Image.Image, path: Path, fmt: str) -> None:
    """Write atomically: a half-written file never carries the final name."""
    tmp = path.with_name(f".{path.name}.tmp")
    if fmt == "jpg":
        image.save(tmp, format="JPEG", quality=95, subsampling=0)
    else:
        image.save(tmp, format="PNG", icc_profile=None)  # pixels are sRGB already
    os.replace(tmp, path)


def _write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# --- fetching packages ----------------------------------------------------------------------------------------------


class FetchError(Exception):
    """A listed package could not be obtained from its registry."""


@dataclass(frozen=True)
class FetchedPackage:
    """A package ready to read: ``root`` is the unpacked folder (Debian) or the downloaded archive (PyPI)."""

    root: Path
    version: str  # the version actually obtained


# (registry, package, pinned version) -> FetchedPackage, raising FetchError
Fetcher = Callable[[str, str, str], FetchedPackage]


def _last_error(result: subprocess.CompletedProcess) -> str:
    lines = [line.strip() for line in (result.stderr or result.stdout or "").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(("E:", "ERROR:"))]
    return (errors or lines or [f"exit status {result.returncode}"])[-1]


def _dist_version(path: Path) -> str:
    name = path.name
    if name.endswith(".whl"):
        return name.split("-")[1]
    for suffix in (".tar.gz", ".zip", ".tar.bz2"):
        if name.endswith(suffix):
            return name[: -len(suffix)].rsplit("-", 1)[-1]
    return ""


class PackageCache:
    """Downloads pinned packages once into a cache folder; later calls answer from the cache without the network.

    Debian: ``apt-get download NAME=VERSION`` (``apt-get update`` once if that fails; if the archive no longer
    serves the version, the one it serves), unpacked with ``dpkg-deb -x`` into ``debian/NAME/``.
    PyPI: ``pip download --no-deps NAME==VERSION`` (a wheel when there is one) into ``pypi/NAME-VERSION/``.
    """

    def __init__(self, cache_dir: Path, warn: Callable[[str], None] = print) -> None:
        self.cache_dir = Path(cache_dir)
        self.warn = warn
        self.downloads: list[str] = []  # files downloaded by this instance (cache hits are not counted)
        self._apt_updated = False

    def __call__(self, registry: str, package: str, version: str) -> FetchedPackage:
        if registry == "debian":
            return self.debian(package, version)
        if registry == "pypi":
            return self.pypi(package, version)
        raise FetchError(f"unknown registry {registry!r}")

    @staticmethod
    def _run(command: Sequence[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(
                list(command), cwd=cwd, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False
            )
        except FileNotFoundError:
            raise FetchError(f"{command[0]} is not available on this machine") from None
        except subprocess.TimeoutExpired:
            raise FetchError(f"{' '.join(command[:3])} took longer than {COMMAND_TIMEOUT_S} s") from None

    # Debian

    def debian(self, package: str, version: str) -> FetchedPackage:
        base = self.cache_dir / "debian"
        unpacked = base / package
        marker = unpacked / ".fetched.json"
        if marker.is_file():
            return FetchedPackage(unpacked, json.loads(marker.read_text())["version"])
        base.mkdir(parents=True, exist_ok=True)
        pinned = urllib.parse.unquote(version)
        deb = self._cached_deb(base, package, pinned) or self._apt_download(base, package, pinned)
        got = self._run(["dpkg-deb", "-f", str(deb), "Version"]).stdout.strip()
        got = got or urllib.parse.unquote(deb.name.split("_")[1])
        staging = base / f".{package}.unpacking"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        result = self._run(["dpkg-deb", "-x", str(deb), str(staging)])
        if result.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            raise FetchError(f"dpkg-deb could not unpack {deb.name}: {_last_error(result)}")
        (staging / ".fetched.json").write_text(json.dumps({"package": package, "version": got, "deb": deb.name}))
        shutil.rmtree(unpacked, ignore_errors=True)
        staging.rename(unpacked)
        return FetchedPackage(unpacked, got)

    @staticmethod
    def _cached_deb(base: Path, package: str, pinned: str) -> Path | None:
        debs = sorted(base.glob(f"{package}_*.deb"))
        exact = [d for d in debs if urllib.parse.unquote(d.name.split("_")[1]) == pinned]
        return (exact or debs or [None])[0]

    def _apt_download(self, base: Path, package: str, pinned: str) -> Path:
        downloads = base / ".download"
        shutil.rmtree(downloads, ignore_errors=True)
        downloads.mkdir()

        def download(spec: str) -> subprocess.CompletedProcess:
            return self._run(["apt-get", "download", spec], cwd=downloads)

        result = download(f"{package}={pinned}")
        if result.returncode != 0 and not self._apt_updated:
            self._apt_updated = True
            update = self._run(["apt-get", "update"])
            if update.returncode != 0:
                self.warn(f"apt-get update failed: {_last_error(update)}")
            result = download(f"{package}={pinned}")
        if result.returncode != 0:
            served = download(package)
            if served.returncode != 0:
                raise FetchError(f"apt-get could not download {package}: {_last_error(result)}")
            result = served
        debs = sorted(downloads.glob("*.deb"))
        if not debs:
            raise FetchError(f"apt-get download {package} left no .deb file")
        target = base / debs[0].name
        os.replace(debs[0], target)
        self.downloads.append(target.name)
        shutil.rmtree(downloads, ignore_errors=True)
        served_version = urllib.parse.unquote(target.name.split("_")[1])
        if served_version != pinned:
            self.warn(f"{package} {pinned} is no longer served by Debian; using {served_version} (same paths)")
        return target

    # PyPI

    def pypi(self, package: str, version: str) -> FetchedPackage:
        folder = self.cache_dir / "pypi" / f"{package}-{version}"
        cached = self._cached_dist(folder)
        if cached is not None:
            return FetchedPackage(cached, _dist_version(cached))
        staging = folder.parent / f".{folder.name}.download"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "--no-input"]
        attempts = (
            [f"{package}=={version}", "--only-binary=:all:"],  # a wheel for this interpreter
            [f"{package}=={version}"],  # a source archive when no wheel fits
            [package, "--only-binary=:all:"],  # the pinned version is gone: the current one
        )
        error = ""
        for extra in attempts:
            result = self._run([*pip, "-d", str(staging), *extra])
            if result.returncode == 0 and self._cached_dist(staging) is not None:
                break
            error = error or _last_error(result)
            for leftover in staging.iterdir():
                leftover.unlink()
        else:
            shutil.rmtree(staging, ignore_errors=True)
            raise FetchError(f"pip could not download {package}=={version}: {error}")
        dist = self._cached_dist(staging)
        assert dist is not None
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / dist.name
        os.replace(dist, target)
        self.downloads.append(target.name)
        shutil.rmtree(staging, ignore_errors=True)
        got = _dist_version(target)
        if got != version:
            self.warn(f"{package} {version} could not be downloaded; using {got}")
        return FetchedPackage(target, got)

    @staticmethod
    def _cached_dist(folder: Path) -> Path | None:
        if not folder.is_dir():
            return None
        dists = sorted(p for p in folder.iterdir() if p.is_file() and _dist_version(p))
        return dists[0] if dists else None


# --- building -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BuildConfig:
    """What to build and where; ``cache_dir`` defaults to ``data_dir/cache``."""

    data_dir: Path = Path("data")
    cache_dir: Path | None = None
    photo_list: Path = PHOTO_LIST
    limit: int | None = None
    packages: tuple[str, ...] | None = None
    skip_large: bool = False
    seed: int = 0
    val_fraction: float = 0.1
    unseen_packages: tuple[str, ...] = UNSEEN_PACKAGES
    workers: int = 1
    recipe: CropRecipe = field(default_factory=CropRecipe)
    progress: bool = True

    @property
    def cache(self) -> Path:
        return Path(self.cache_dir) if self.cache_dir is not None else Path(self.data_dir) / "cache"


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


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _source(row: PhotoRow) -> dict[str, str]:
    return {
        "registry": row.registry,
        "package": row.package,
        "version": row.pinned,
        "extract": row.extract,
        "member": row.member,
        "licence": row.licence,
    }


def _cached_photo(photos_dir: Path, row: PhotoRow) -> dict[str, Any] | None:
    sidecar = photos_dir / f"{row.id}.json"
    try:
        info = json.loads(sidecar.read_text())
    except (OSError, ValueError):
        return None
    if info.get("member") != row.member or not (photos_dir / info.get("file", "")).is_file():
        return None
    return info


def _extract_photo(row: PhotoRow, package: FetchedPackage, reader: MemberReader, photos_dir: Path) -> dict[str, Any]:
    data = reader.read(row.extract, package.root, row.member)
    photo = decode_photo(data, row.extract)
    name = f"{row.id}.{photo.ext}"
    for stale in photos_dir.glob(f"{row.id}.*"):
        stale.unlink()
    _write_bytes(photos_dir / name, photo.encoded)
    info = {
        "id": row.id,
        **_source(row),
        "version_got": package.version,
        "file": name,
        "width": photo.image.width,
        "height": photo.image.height,
    }
    _write_bytes(photos_dir / f"{row.id}.json", json.dumps(info, indent=1).encode())
    return info


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
        _save(crop.image, folder / Path(rel).name, job.recipe.format)
        records.append(
            {"file": rel, "box": list(crop.box), "scale": round(crop.scale, 5), "luma_std": round(crop.luma_std, 2)}
        )
    val_rel = None
    if job.val_photo:
        val_rel = f"{PHOTO_FOLDERS[job.split]}/{job.photo}.png"
        _save(_val_photo(image), job.data_dir / val_rel, "png")
    return {"photo": job.photo, "crops": records, "dropped_flat": dropped, "val_photo": val_rel}


def _crop_key(photo_sha256: str, split: str, recipe: CropRecipe, seed: int) -> str:
    spec = {"photo": photo_sha256, "split": split, "recipe": asdict(recipe), "seed": seed, "val": VAL_PHOTO_SHORT_SIDE}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def _previous_crops(previous: Mapping[str, Any] | None, data_dir: Path) -> dict[str, tuple[dict, list[dict]]]:
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


def _map_jobs(jobs: list[CropJob], workers: int) -> Iterator[dict[str, Any]]:
    if workers <= 1 or len(jobs) <= 1:
        yield from map(run_crop_job, jobs)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(run_crop_job, jobs)


def _prune(folder: Path, keep: set[Path]) -> int:
    removed = 0
    if folder.is_dir():
        for path in folder.iterdir():
            if path.is_file() and path not in keep:
                path.unlink()
                removed += 1
    return removed


def _split_folders(data_dir: Path) -> list[Path]:
    return [data_dir / "crops" / split for split in SPLITS] + [data_dir / name for name in PHOTO_FOLDERS.values()]


def build_dataset(config: BuildConfig, fetch: Fetcher | None = None) -> BuildResult:
    """Build (or bring up to date) ``config.data_dir``: photos/, crops/{train,val}/, val_photos/, manifest.json.

    Every step is cached: packages already in the cache are not fetched again, photos already extracted are not
    extracted again, and photos whose crops exist for the same photo, split, recipe and seed are not cut again.
    A package that cannot be fetched or a photo that cannot be extracted is recorded as failed, never raised.
    """
    started = time.monotonic()
    data_dir = Path(config.data_dir)
    recipe = config.recipe
    if recipe.format not in ("png", "jpg"):
        raise ValueError(f"crop format must be png or jpg, not {recipe.format!r}")
    if not 0.0 <= config.val_fraction < 1.0:
        raise ValueError("val_fraction must be in [0, 1)")

    def warn(message: str) -> None:
        tqdm.write(message, file=sys.stderr)

    fetch = fetch or PackageCache(config.cache, warn=warn)
    rows = load_photo_list(config.photo_list)
    selected, skipped = select_rows(rows, packages=config.packages, skip_large=config.skip_large, limit=config.limit)
    photos_dir = data_dir / "photos"
    for folder in (photos_dir, *_split_folders(data_dir)):
        folder.mkdir(parents=True, exist_ok=True)

    # 1. packages, only for photos not extracted yet
    infos: dict[str, dict[str, Any]] = {}
    for row in selected:
        info = _cached_photo(photos_dir, row)
        if info is not None:
            infos[row.id] = info
    needed = sorted({(r.registry, r.package, r.version) for r in selected if r.id not in infos})
    fetched: dict[tuple[str, str, str], FetchedPackage | FetchError] = {}
    for key in tqdm(needed, desc="packages", unit="pkg", disable=not config.progress or not needed):
        try:
            fetched[key] = fetch(*key)
        except FetchError as exc:
            warn(f"package {key[1]} {key[2]} ({key[0]}): {exc}")
            fetched[key] = exc

    # 2. photos
    failures: dict[str, str] = {}
    reader = MemberReader()
    extracted = 0
    todo = [row for row in selected if row.id not in infos]
    for row in tqdm(todo, desc="photos", unit="photo", disable=not config.progress or not todo):
        package = fetched[(row.registry, row.package, row.version)]
        if isinstance(package, FetchError):
            failures[row.id] = f"package unavailable: {package}"
            continue
        try:
            infos[row.id] = _extract_photo(row, package, reader, photos_dir)
            extracted += 1
        except ExtractError as exc:
            failures[row.id] = str(exc)
        except (OSError, ValueError) as exc:
            failures[row.id] = f"{type(exc).__name__}: {exc}"
        if row.id in failures:
            warn(f"photo {row.id}: {failures[row.id]}")
    del reader

    # 3. crops, reusing those of an identical earlier build
    reusable = _previous_crops(load_manifest(data_dir), data_dir)
    photo_records: dict[str, dict[str, Any]] = {}
    crop_records: dict[str, list[dict[str, Any]]] = {}
    jobs = []
    for row in selected:
        info = infos.get(row.id)
        if info is None:
            continue
        split = split_of(row.id, config.val_fraction, row.package, config.unseen_packages)
        sha = _file_sha256(photos_dir / info["file"])
        key = _crop_key(sha, split, recipe, config.seed)
        short = min(info["width"], info["height"])
        record = {
            "id": row.id,
            **_source(row),
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
            failures[row.id] = f"too small: short side {short} < {recipe.min_short_side}"
            continue
        old = reusable.get(row.id)
        if old is not None and old[0].get("crop_key") == key:
            photo_records[row.id] = {**record, **{k: old[0][k] for k in ("crops", "dropped_flat", "val_photo")}}
            crop_records[row.id] = old[1]
            continue
        photo_records[row.id] = record
        val = split in PHOTO_FOLDERS
        jobs.append(CropJob(row.id, photos_dir / info["file"], split, data_dir, recipe, config.seed, val))
    rows_by_id = {row.id: row for row in selected}
    results = _map_jobs(jobs, config.workers)
    for result in tqdm(results, total=len(jobs), desc="crops", unit="photo", disable=not config.progress or not jobs):
        row = rows_by_id[result["photo"]]
        if "error" in result:
            failures[row.id] = result["error"]
            del photo_records[row.id]
            warn(f"photo {row.id}: {result['error']}")
            continue
        record = photo_records[row.id]
        record.update(crops=len(result["crops"]), dropped_flat=result["dropped_flat"], val_photo=result["val_photo"])
        source = {k: v for k, v in _source(row).items() if k not in ("extract",)}
        crop_records[row.id] = [
            {"file": c["file"], "photo": row.id, "split": record["split"], **source, **c} for c in result["crops"]
        ]

    # 4. manifest
    photos = []
    for row in selected:
        if row.id in photo_records:
            photos.append(photo_records[row.id])
        else:
            reason = failures.get(row.id, "not extracted")
            photos.append({"id": row.id, **_source(row), "status": "failed", "reason": reason})
    photos += [{"id": row.id, **_source(row), "status": "skipped", "reason": "--skip-large"} for row in skipped]
    crops = [crop for row in selected for crop in crop_records.get(row.id, [])]
    ok = [p for p in photos if p["status"] == "ok"]
    totals = {
        "photos_listed": len(rows),
        "photos_selected": len(selected),
        "photos_ok": len(ok),
        "photos_failed": sum(p["status"] == "failed" for p in photos),
        "photos_skipped": len(skipped),
        "photos_train": sum(p["split"] == "train" for p in ok),
        "photos_val": sum(p["split"] == "val" for p in ok),
        "photos_unseen": sum(p["split"] == "unseen" for p in ok),
        "crops_train": sum(c["split"] == "train" for c in crops),
        "crops_val": sum(c["split"] == "val" for c in crops),
        "crops_unseen": sum(c["split"] == "unseen" for c in crops),
        "crops_dropped_flat": sum(p.get("dropped_flat", 0) for p in ok),
    }
    manifest: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "photo_list_sha256": _file_sha256(Path(config.photo_list)),
        "selection": {
            "packages": sorted(config.packages) if config.packages else None,
            "skip_large": config.skip_large,
            "limit": config.limit,
        },
        "recipe": {**asdict(recipe), "seed": config.seed, "val_fraction": config.val_fraction},
        "val_photo_short_side": VAL_PHOTO_SHORT_SIDE,
        "unseen_packages": sorted(config.unseen_packages),
        "split_rule": "photos of unseen_packages are 'unseen'; of the rest, sha256(photo id) as a fraction of "
        "2**64 below val_fraction is 'val'",
        "totals": totals,
        "photos": photos,
        "crops": crops,
    }
    manifest["sha256"] = manifest_sha256(manifest)
    manifest_path = data_dir / MANIFEST_NAME
    _write_bytes(manifest_path, (json.dumps(manifest, indent=1, ensure_ascii=False) + "\n").encode("utf-8"))

    # 5. files of earlier builds that this manifest does not name
    keep = {data_dir / c["file"] for c in crops} | {data_dir / p["val_photo"] for p in ok if p.get("val_photo")}
    for folder in _split_folders(data_dir):
        _prune(folder, keep)
    return BuildResult(
        manifest=manifest,
        manifest_path=manifest_path,
        seconds=time.monotonic() - started,
        downloaded=len(getattr(fetch, "downloads", ())),
        extracted=extracted,
        cropped=len(jobs),
    )


# --- command line ---------------------------------------------------------------------------------------------------


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
