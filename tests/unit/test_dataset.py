"""Dataset builder: extraction formats, crop recipe, split by photo, manifest hash, failures reported (no network)."""

from __future__ import annotations

import csv
import io
import json
import random
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training.__main__ import build_parser
from training.dataset.build import build_dataset
from training.dataset.config import BuildConfig
from training.dataset.crops import CropRecipe, make_crops
from training.dataset.fetch import FetchedPackage, FetchError, PackageCache
from training.dataset.manifest import manifest_sha256
from training.dataset.photos import PhotoRow, load_photo_list, photo_id, select_rows
from training.dataset.split import split_of
from training.extract import (
    GREY,
    ExtractError,
    MemberReader,
    RccFile,
    composite_on_grey,
    decode_photo,
    largest_jpeg,
)

# --- helpers --------------------------------------------------------------------------------------------------------


def textured(width: int, height: int, seed: int = 0) -> Image.Image:
    """A colourful, non-flat test picture: smooth random colour blobs plus fine noise."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).resize((width, height))
    fine = rng.integers(-20, 21, (height, width, 3))
    return Image.fromarray(np.clip(np.asarray(coarse, dtype=np.int16) + fine, 0, 255).astype(np.uint8))


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def build_rcc(files: dict[str, tuple[bytes, bool]], version: int) -> bytes:
    """A Qt binary resource file: ``files`` maps paths to (content, zlib-compressed?)."""
    root: dict = {}
    for path, value in files.items():
        node = root
        *folders, leaf = path.split("/")
        for folder in folders:
            node = node.setdefault(folder, {})
        node[leaf] = value

    names = bytearray()
    name_offsets: dict[str, int] = {}

    def name_offset(name: str) -> int:
        if name not in name_offsets:
            name_offsets[name] = len(names)
            names.extend(struct.pack(">HI", len(name), 0) + name.encode("utf-16-be"))
        return name_offsets[name]

    data = bytearray()
    entries: list[tuple[str, object]] = [("", root)]  # breadth-first: children of a directory are contiguous
    records = []
    index = 0
    while index < len(entries):
        name, node = entries[index]
        offset = name_offset(name) if index else 0
        if isinstance(node, dict):
            children = sorted(node.items())
            records.append(struct.pack(">IHII", offset, 0x02, len(children), len(entries)))
            entries.extend(children)
        else:
            content, compressed = node
            blob = struct.pack(">I", len(content)) + zlib.compress(content) if compressed else content
            records.append(struct.pack(">IHHHI", offset, 0x01 if compressed else 0x00, 0, 1, len(data)))
            data.extend(struct.pack(">I", len(blob)) + blob)
        if version >= 2:
            records[-1] += struct.pack(">Q", 0)  # last-modified time
        index += 1

    header_size = 20 + (4 if version >= 3 else 0)
    data_offset = header_size
    names_offset = data_offset + len(data)
    tree_offset = names_offset + len(names)
    header = b"qres" + struct.pack(">4I", version, tree_offset, data_offset, names_offset)
    if version >= 3:
        header += struct.pack(">I", 0)  # overall flags
    return header + bytes(data) + bytes(names) + b"".join(records)


# --- Qt resources ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [1, 2, 3])
def test_rcc_reads_plain_and_zlib_entries(version):
    plain, packed = b"plain bytes \x00\x01", b"compressible " * 50
    rcc = RccFile(build_rcc({"a/b/plain.bin": (plain, False), "a/c/packed.txt": (packed, True)}, version))
    assert rcc.version == version
    assert rcc.read("a/b/plain.bin") == plain
    assert rcc.read("/a/c/packed.txt") == packed
    assert sorted(rcc.paths()) == ["a/b/plain.bin", "a/c/packed.txt"]
    with pytest.raises(ExtractError, match="not in the Qt resource"):
        rcc.read("a/b/missing.bin")
    with pytest.raises(ExtractError, match="directory"):
        rcc.read("a/b")


def test_rcc_rejects_other_files():
    with pytest.raises(ExtractError, match="qres"):
        RccFile(b"PK\x03\x04" + b"\x00" * 40)
    with pytest.raises(ExtractError, match="version"):
        RccFile(b"qres" + struct.pack(">4I", 9, 20, 20, 20))


def test_member_reader_qt_rcc(tmp_path):
    png = encode(textured(32, 24), "PNG")
    rcc = build_rcc({"gcompris/img/photo.png": (png, True), "gcompris/img/other.png": (b"x", False)}, 2)
    (tmp_path / "usr/share").mkdir(parents=True)
    (tmp_path / "usr/share/res.rcc").write_bytes(rcc)
    assert MemberReader().read("qt-rcc", tmp_path, "usr/share/res.rcc!gcompris/img/photo.png") == png
    with pytest.raises(ExtractError):
        MemberReader().read("qt-rcc", tmp_path, "usr/share/res.rcc")


# --- Edje themes (JPEG scan) ----------------------------------------------------------------------------------------


def test_edj_scan_keeps_the_largest_jpeg(tmp_path):
    small = encode(textured(40, 30, seed=1), "JPEG", quality=90)
    large = encode(textured(120, 80, seed=2), "JPEG", quality=90)
    junk = bytes(random.Random(0).randrange(256) for _ in range(500))
    blob = b"EET\x00" + junk + small + junk + b"\xff\xd8\xff\xe0 not a jpeg" + junk + large + junk + large[:300]
    assert largest_jpeg(blob) == large
    (tmp_path / "bg.edj").write_bytes(blob)
    assert MemberReader().read("edj-largest-jpeg", tmp_path, "bg.edj") == large
    with pytest.raises(ExtractError, match="no decodable JPEG"):
        largest_jpeg(junk + b"\xff\xd8\xff" + junk)


# --- decoding -------------------------------------------------------------------------------------------------------


def test_alpha_on_grey_centres_the_cut_out_on_a_square_grey_canvas():
    cutout = Image.new("RGBA", (60, 40), (0, 0, 0, 0))
    cutout.paste((255, 0, 0, 255), (10, 10, 40, 20))  # opaque red, 30x10
    cutout.putpixel((10, 10), (255, 0, 0, 128))  # half-transparent corner
    out = composite_on_grey(cutout)
    assert out.mode == "RGB" and out.size == (30, 30)  # trimmed to the visible 30x10, squared
    pixels = np.asarray(out)
    assert (pixels[:10] == GREY).all() and (pixels[20:] == GREY).all()  # grey above and below
    assert (pixels[11:20, 1:] == (255, 0, 0)).all()  # the red band in the middle rows
    assert abs(int(pixels[10, 0, 0]) - (255 + GREY) // 2) <= 1 and abs(int(pixels[10, 0, 1]) - GREY // 2) <= 1

    photo = decode_photo(encode(cutout, "PNG"), "alpha-on-grey")
    assert photo.ext == "png" and photo.image.size == (30, 30)
    with pytest.raises(ExtractError, match="transparent"):
        composite_on_grey(Image.new("RGBA", (8, 8)))


def test_decode_keeps_untouched_originals_and_uprights_rotated_ones():
    jpeg = encode(textured(64, 32), "JPEG", quality=90)
    photo = decode_photo(jpeg, "file")
    assert photo.encoded == jpeg and photo.ext == "jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    rotated = decode_photo(encode(textured(64, 32), "JPEG", exif=exif), "file")
    assert rotated.ext == "png" and rotated.image.size == (32, 64)
    with pytest.raises(ExtractError, match="decode"):
        decode_photo(b"not a picture", "file")


# --- crops ----------------------------------------------------------------------------------------------------------


def test_crop_counts_and_scales():
    recipe = CropRecipe()
    assert [recipe.count(s) for s in (200, 256, 400, 512, 1024, 1280, 4000)] == [1, 1, 2, 4, 16, 16, 16]
    sides = recipe.sides(1280)
    assert sides[0] == 1280 and sides[-1] == 256 and sides == sorted(sides, reverse=True)
    assert recipe.sides(2560)[-1] == 512  # full-resolution detail at the capped size (short side 1280)
    assert recipe.sides(300) == [300]


def test_make_crops_sizes_positions_and_determinism():
    image = textured(600, 400)
    recipe = CropRecipe()
    crops, dropped = make_crops(image, recipe, random.Random(1))
    assert dropped == 0 and len(crops) == recipe.count(400) == 2
    assert crops[0].box == (100, 0, 500, 400)  # whole short side, centred
    for crop in crops:
        x0, y0, x1, y1 = crop.box
        assert crop.image.size == (256, 256) and x1 - x0 == y1 - y0 and 0 <= x0 and x1 <= 600 and y1 <= 400
        assert crop.scale == pytest.approx(256 / (x1 - x0))
    again, _ = make_crops(image, recipe, random.Random(1))
    assert [c.box for c in again] == [c.box for c in crops]
    assert all(np.array_equal(np.asarray(a.image), np.asarray(b.image)) for a, b in zip(again, crops, strict=True))


def test_flat_crops_are_resampled_or_dropped():
    image = Image.new("RGB", (1024, 512), (90, 140, 200))  # flat sky on the left half ...
    image.paste(textured(512, 512), (512, 0))  # ... detail on the right half
    recipe = CropRecipe(tries=20)
    crops, dropped = make_crops(image, recipe, random.Random(3))
    assert len(crops) + dropped == recipe.count(512) and len(crops) >= 3
    assert all(crop.luma_std >= recipe.flat_std for crop in crops)
    assert any(crop.box[0] >= 512 for crop in crops[1:])  # detail crops moved to the textured half

    flat = Image.new("RGB", (512, 512), (GREY, GREY, GREY))
    crops, dropped = make_crops(flat, CropRecipe(tries=2), random.Random(0))
    assert crops == [] and dropped == 4


# --- selection, ids, split ------------------------------------------------------------------------------------------


def test_photo_ids_are_stable_and_file_safe():
    member = "usr/share/gcompris-qt/rcc/categorization.rcc!gcompris/src/resource/images/fishes/Fish 1.webp"
    assert photo_id("gcompris-qt-data", member) == photo_id("gcompris-qt-data", member)
    assert photo_id("gcompris-qt-data", member).startswith("gcompris-qt-data_fishes-fish-1_")
    assert photo_id("a", "x/img.png") != photo_id("b", "x/img.png")


def test_shipped_photo_list():
    rows = load_photo_list()
    assert len(rows) == 677 and len({row.id for row in rows}) == 677
    assert all(row.licence for row in rows)
    assert {row.registry for row in rows} == {"debian", "pypi"}
    assert {row.extract for row in rows} == {"file", "alpha-on-grey", "wheel-member", "qt-rcc", "edj-largest-jpeg"}


def test_select_rows():
    rows = [
        PhotoRow("debian", p, "1", "file", f"{p}/{i}.jpg", "CC0") for p in ("a", "enlightenment-data") for i in range(3)
    ]
    selected, skipped = select_rows(rows, skip_large=True, limit=2)
    assert [r.package for r in selected] == ["a", "a"] and len(skipped) == 3
    selected, skipped = select_rows(rows, packages=["enlightenment-data"], limit=1)
    assert [r.member for r in selected] == ["enlightenment-data/0.jpg"] and not skipped
    with pytest.raises(ValueError, match="nope"):
        select_rows(rows, packages=["nope"])


def test_split_is_by_photo_hash():
    ids = [f"pkg_photo-{i}_abc" for i in range(2000)]
    assert [split_of(i, 0.1) for i in ids] == [split_of(i, 0.1) for i in ids]
    assert 150 < sum(split_of(i, 0.1) == "val" for i in ids) < 250
    assert all(split_of(i, 0.0) == "train" for i in ids)


def test_manifest_hash_ignores_key_order_and_its_own_field():
    a = {"format": 1, "crops": [{"file": "x.png", "box": [0, 0, 1, 1]}], "totals": {"n": 1}}
    b = {"totals": {"n": 1}, "crops": [{"box": [0, 0, 1, 1], "file": "x.png"}], "format": 1, "sha256": "old"}
    assert manifest_sha256(a) == manifest_sha256(b)
    assert manifest_sha256(a) != manifest_sha256({**a, "totals": {"n": 2}})


# --- the whole build with a fake downloader -------------------------------------------------------------------------


class FakeRegistry:
    """Stands in for apt-get/pip: packages are folders (or a wheel) under tmp_path; 'gone' is missing."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.calls: list[tuple[str, str, str]] = []

    def __call__(self, registry: str, package: str, version: str) -> FetchedPackage:
        self.calls.append((registry, package, version))
        if package == "gone":
            raise FetchError("apt-get could not download gone: E: Unable to locate package gone")
        path = self.root / package
        return FetchedPackage(path if path.exists() else self.root / f"{package}.whl", version)


@pytest.fixture()
def fake_packages(tmp_path) -> tuple[Path, FakeRegistry]:
    packages = tmp_path / "packages"
    rows = []
    photos = packages / "photos/usr/share/photos"
    photos.mkdir(parents=True)
    for i in range(12):
        textured(300 + 20 * i, 280, seed=i).save(photos / f"p{i}.jpg", quality=90)
        rows.append(("debian", "photos", "1.0-1", "file", f"usr/share/photos/p{i}.jpg", "CC0"))
    stamps = packages / "stamps/usr/share/stamps"
    stamps.mkdir(parents=True)
    cutout = Image.new("RGBA", (400, 300), (0, 0, 0, 0))
    cutout.paste(textured(300, 260, seed=20).convert("RGBA"), (50, 20))
    cutout.save(stamps / "bird.png")
    rows.append(("debian", "stamps", "2022-1", "alpha-on-grey", "usr/share/stamps/bird.png", "GPL-2+"))
    rcc = build_rcc({"res/images/fish.png": (encode(textured(320, 300, seed=21), "PNG"), True)}, 2)
    (packages / "edu/usr/share/edu").mkdir(parents=True)
    (packages / "edu/usr/share/edu/fish.rcc").write_bytes(rcc)
    rows.append(("debian", "edu", "3.1-2", "qt-rcc", "usr/share/edu/fish.rcc!res/images/fish.png", "CC-BY-SA-4.0"))
    edj = b"junk" + encode(textured(64, 64), "JPEG") + b"more" + encode(textured(400, 300, seed=22), "JPEG")
    (packages / "themes/usr/share/themes").mkdir(parents=True)
    (packages / "themes/usr/share/themes/bg.edj").write_bytes(edj)
    rows.append(("debian", "themes", "0.25-2", "edj-largest-jpeg", "usr/share/themes/bg.edj", "BSD-2-clause"))
    with zipfile.ZipFile(packages / "wheelpkg.whl", "w") as zf:
        zf.writestr("wheelpkg/data/cat.png", encode(textured(300, 300, seed=23), "PNG"))
    rows.append(("pypi", "wheelpkg", "0.4.0", "wheel-member", "wheelpkg/data/cat.png", "MIT"))
    rows.append(("debian", "gone", "1.0", "file", "usr/share/gone/x.jpg", "CC0"))
    listing = tmp_path / "photos.csv"
    with open(listing, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["registry", "package", "version", "extract", "member", "licence"])
        writer.writerows(rows)
    return listing, FakeRegistry(packages)


def test_build_reports_missing_package_and_splits_by_photo(tmp_path, fake_packages):
    listing, registry = fake_packages
    config = BuildConfig(data_dir=tmp_path / "data", photo_list=listing, val_fraction=0.3, progress=False)
    result = build_dataset(config, fetch=registry)
    manifest = result.manifest
    totals = manifest["totals"]
    assert totals["photos_listed"] == 17 and totals["photos_ok"] == 16 and totals["photos_failed"] == 1
    failed = [p for p in manifest["photos"] if p["status"] == "failed"]
    assert failed[0]["package"] == "gone" and "Unable to locate package" in failed[0]["reason"]

    splits: dict[str, set[str]] = {}
    for crop in manifest["crops"]:
        splits.setdefault(crop["photo"], set()).add(crop["split"])
        assert (config.data_dir / crop["file"]).is_file() and crop["file"].startswith(f"crops/{crop['split']}/")
        assert crop["licence"] and crop["package"] and len(crop["box"]) == 4
    assert all(len(s) == 1 for s in splits.values())  # no photo on both sides
    assert {s for (s,) in splits.values()} == {"train", "val"}
    assert (
        totals["crops_train"] + totals["crops_val"]
        == len(manifest["crops"])
        == len(list((config.data_dir / "crops").rglob("*.png")))
    )
    val_photos = [p for p in manifest["photos"] if p.get("split") == "val"]
    for photo in val_photos:
        with Image.open(config.data_dir / photo["val_photo"]) as image:
            assert min(image.size) == 256
    stored = json.loads((config.data_dir / "manifest.json").read_text())
    assert stored["sha256"] == manifest_sha256(stored) == manifest["sha256"]
    kinds = {p["extract"]: p["file"].rsplit(".", 1)[1] for p in manifest["photos"] if p["status"] == "ok"}
    assert kinds == {
        "file": "jpg",
        "alpha-on-grey": "png",
        "qt-rcc": "png",
        "edj-largest-jpeg": "jpg",
        "wheel-member": "png",
    }


def test_held_out_packages_form_the_unseen_split(tmp_path, fake_packages):
    listing, registry = fake_packages
    config = BuildConfig(
        data_dir=tmp_path / "data", photo_list=listing, val_fraction=0.3, unseen_packages=("edu", "stamps"),
        progress=False,
    )
    manifest = build_dataset(config, fetch=registry).manifest
    by_package = {p["package"]: p["split"] for p in manifest["photos"] if p["status"] == "ok"}
    assert by_package["edu"] == by_package["stamps"] == "unseen"
    assert {p["split"] for p in manifest["photos"] if p["status"] == "ok" and p["package"] == "photos"} <= {
        "train",
        "val",
    }
    assert manifest["totals"]["photos_unseen"] == 2 and manifest["unseen_packages"] == ["edu", "stamps"]
    unseen = [p for p in manifest["photos"] if p.get("split") == "unseen"]
    assert all(p["val_photo"].startswith("unseen_photos/") for p in unseen)
    assert all((config.data_dir / p["val_photo"]).is_file() for p in unseen)
    assert all(c["file"].startswith("crops/unseen/") for c in manifest["crops"] if c["split"] == "unseen")


def test_second_build_fetches_and_cuts_nothing(tmp_path, fake_packages):
    listing, registry = fake_packages
    config = BuildConfig(data_dir=tmp_path / "data", photo_list=listing, progress=False, limit=4)
    first = build_dataset(config, fetch=registry)
    calls = len(registry.calls)
    second = build_dataset(config, fetch=registry)
    assert len(registry.calls) == calls and second.extracted == 0 and second.cropped == 0
    assert second.manifest["sha256"] == first.manifest["sha256"]
    smaller = build_dataset(BuildConfig(**{**config.__dict__, "limit": 2}), fetch=registry)
    assert smaller.cropped == 0 and len(list((config.data_dir / "crops").rglob("*.png"))) == len(
        smaller.manifest["crops"]
    )


def test_package_cache_answers_from_the_cache_without_commands(tmp_path, monkeypatch):
    def no_commands(*args, **kwargs):
        raise AssertionError("the cache should have answered")

    monkeypatch.setattr(PackageCache, "_run", staticmethod(no_commands))
    unpacked = tmp_path / "debian" / "palapeli-data"
    unpacked.mkdir(parents=True)
    (unpacked / ".fetched.json").write_text(json.dumps({"version": "4:22.12.3-1"}))
    wheel = tmp_path / "pypi" / "imgaug-0.4.0" / "imgaug-0.4.0-py2.py3-none-any.whl"
    wheel.parent.mkdir(parents=True)
    wheel.write_bytes(b"PK")
    cache = PackageCache(tmp_path)
    assert cache("debian", "palapeli-data", "4%3a22.12.3-1") == FetchedPackage(unpacked, "4:22.12.3-1")
    assert cache("pypi", "imgaug", "0.4.0") == FetchedPackage(wheel, "0.4.0")
    with pytest.raises(FetchError, match="registry"):
        cache("npm", "left-pad", "1.0.0")


def test_cli_options(monkeypatch):
    monkeypatch.setenv("TRAINING_DATA_DIR", "/srv/training-data")
    args = build_parser().parse_args(["dataset", "--limit", "5", "--packages", "a,b", "--skip-large", "--seed", "3"])
    assert args.data_dir == "/srv/training-data" and args.limit == 5 and args.packages == "a,b"
    assert args.skip_large and args.seed == 3 and args.val_fraction == 0.1 and args.handler.__name__ == "_dataset"


def test_unreadable_extracted_photo_is_reported(tmp_path, fake_packages):
    listing, registry = fake_packages
    config = BuildConfig(data_dir=tmp_path / "data", photo_list=listing, progress=False, limit=2)
    first = build_dataset(config, fetch=registry)
    broken = first.manifest["photos"][0]
    (config.data_dir / broken["file"]).write_bytes(b"garbage")
    result = build_dataset(BuildConfig(**{**config.__dict__, "seed": 1}), fetch=registry)
    status = {p["id"]: (p["status"], p.get("reason", "")) for p in result.manifest["photos"]}
    assert status[broken["id"]][0] == "failed" and "cannot read" in status[broken["id"]][1]
    assert result.totals["photos_ok"] == 1 and all(c["photo"] != broken["id"] for c in result.manifest["crops"])
