"""Safe image decoding, working-size grey input, full-resolution chroma merge and encoding (Pillow + numpy)."""

from __future__ import annotations

import functools
import io
import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from colorizers import color, jpeg

DEFAULT_MAX_PIXELS = 50_000_000

#: Pillow format name -> the name this project uses. MPO is the multi-picture JPEG many cameras and phones write;
#: Pillow's JPEG opener returns it, so it is not a separate opener.
_INPUT_FORMATS = {
    "JPEG": "jpeg",
    "MPO": "jpeg",
    "PNG": "png",
    "WEBP": "webp",
    "TIFF": "tiff",
    "BMP": "bmp",
    "GIF": "gif",
}
_OPENERS = ["JPEG", "PNG", "WEBP", "TIFF", "BMP", "GIF"]
SUPPORTED_INPUT_FORMATS = ("jpeg", "png", "webp", "tiff", "bmp", "gif")

#: Output formats of :func:`encode` and their media types.
MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
_FORMAT_ALIASES = {"jpg": "jpeg", "jpe": "jpeg"}
_MAX_SIDE = {"jpeg": 65_500, "webp": 16_383}  # format limits on width and height
# Modes Pillow's encoders write as they are. RGBX (RGB plus a padding byte, how Pillow stores RGB; the table merge's
# output) needs no 12-megapixel copy for WebP; PNG writes no RGBX. JPEG is written by simplejpeg (``_encode_jpeg``).
_ENCODER_MODES = {"png": ("RGB", "L"), "webp": ("RGB", "L", "RGBX")}
# Encoder effort. Photos compress barely better at higher zlib levels (level 6, Pillow's default, makes a
# 12-megapixel result about 5 % smaller for 4x the time); WebP method 2 is about twice as fast as method 4.
PNG_COMPRESS_LEVEL = 1
WEBP_METHOD = 2

# File signatures of the supported formats: a file that starts like one but does not open is damaged.
_SIGNATURES = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"II+\x00", "TIFF"),
    (b"MM\x00+", "TIFF"),
    (b"BM", "BMP"),
)

_EXIF_ORIENTATION = 0x0112
_HIGH_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")


# --------------------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------------------


class ImageError(ValueError):
    """An uploaded image cannot be used; ``code`` is stable for clients, the message is for people."""

    code = "invalid_image"
    default_message = "The image cannot be used."

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)


class UnsupportedImageError(ImageError):
    """Not an image, or an image format/colour mode this service does not read."""

    code = "unsupported_image"
    default_message = "The file is not a supported image (JPEG, PNG, WebP, TIFF, BMP or GIF)."


class CorruptImageError(ImageError):
    """Empty, truncated or damaged image data."""

    code = "corrupt_image"
    default_message = "The image file is damaged or incomplete and cannot be read."


class ImageTooLargeError(ImageError):
    """More pixels than allowed (checked from the header, before decoding)."""

    code = "image_too_large"
    default_message = "The image has too many pixels to process."

    def __init__(
        self,
        message: str | None = None,
        *,
        width: int | None = None,
        height: int | None = None,
        max_pixels: int | None = None,
    ) -> None:
        self.width, self.height, self.max_pixels = width, height, max_pixels
        if message is None and width is not None and height is not None and max_pixels is not None:
            message = (
                f"The image is {width} x {height} pixels ({width * height / 1e6:.1f} megapixels); "
                f"the limit is {max_pixels / 1e6:.1f} megapixels."
            )
        super().__init__(message)


# --------------------------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DecodedImage:
    """A decoded upload: upright 8-bit sRGB (or grey) pixels, the alpha channel kept aside, and the source format."""

    pixels: Image.Image  # mode "RGB", or "L" for a grey photo without alpha; EXIF orientation applied
    alpha: Image.Image | None  # mode "L", same size as pixels; None when the image has no (non-opaque) alpha
    format: str  # "jpeg", "png", "webp", "tiff", "bmp" or "gif"
    draft: bool = False  # True: a JPEG decoded DCT-scaled down (``draft_size``), smaller than the photo itself

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels, after EXIF orientation."""
        return self.pixels.size

    @functools.cached_property
    def rgb(self) -> Image.Image:
        """The pixels as mode "RGB". A grey photo stays one channel in ``pixels``: a black-and-white scan, the usual
        input, decodes about twice as fast that way, and its lightness is one table read per pixel."""
        return self.pixels if self.pixels.mode == "RGB" else self.pixels.convert("RGB")


def decode(
    data: bytes,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    draft_size: int | None = None,
    on_draft: Callable[[], object] | None = None,
) -> DecodedImage:
    """Decode uploaded bytes to an upright RGB image plus alpha; raises only :class:`ImageError` subclasses.

    The pixel count is checked from the header before any pixel is decoded. Animated GIF/WebP/APNG and
    multi-page TIFF give their first frame. 16-bit and floating-point greys are scaled to 8 bits by their range.

    ``draft_size``: a JPEG may be decoded scaled down by 1/2, 1/4 or 1/8 while both its sides stay at least this
    many pixels (the result's ``draft`` says whether it was). The JPEG decoder then averages each block instead of
    producing every pixel, several times cheaper: enough for a working-size copy, not for the photo itself.
    ``on_draft`` (which must not raise) is called when the header has shown that it will be a draft, before any
    pixel is decoded: a caller can start the full-size decode alongside.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"decode() takes bytes, not {type(data).__name__}")
    if len(data) == 0:
        raise CorruptImageError("The file is empty.")
    try:
        im = Image.open(io.BytesIO(data), formats=_OPENERS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        limit = f"{max_pixels / 1e6:.1f} megapixels"
        raise ImageTooLargeError(f"The image has too many pixels; the limit is {limit}.") from exc
    except UnidentifiedImageError as exc:
        raise _unidentified_error(bytes(data[:64])) from exc
    except Exception as exc:  # Pillow plugins raise OSError, SyntaxError, struct.error, EOFError, ...
        raise CorruptImageError() from exc

    # The BytesIO needs no closing; closing the image would free pixels that rgb may share with it.
    width, height = im.size
    if width <= 0 or height <= 0:
        raise CorruptImageError("The image has no pixels.")
    if width * height > max_pixels:
        raise ImageTooLargeError(width=width, height=height, max_pixels=max_pixels)
    fmt = _INPUT_FORMATS[str(im.format)]
    try:
        draft = fmt == "jpeg" and draft_size is not None and _draft(im, draft_size)
        if draft and on_draft is not None:
            on_draft()
        im.load()  # first frame only
        upright = _apply_orientation(im)
        pixels, alpha = _to_pixels_and_alpha(upright)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLargeError() from exc
    except Exception as exc:
        raise CorruptImageError(f"The {fmt.upper()} image is damaged or incomplete and cannot be read.") from exc
    return DecodedImage(pixels=pixels, alpha=alpha, format=fmt, draft=draft)


def _draft(jpeg: Image.Image, min_side: int) -> bool:
    """Ask the JPEG decoder for the smallest DCT scaling that keeps both sides >= ``min_side``; True if it shrinks."""
    full_size = jpeg.size
    jpeg.draft(jpeg.mode, (min_side, min_side))  # the mode stays as stored: conversion is _to_pixels_and_alpha's job
    return jpeg.size != full_size


def _unidentified_error(head: bytes) -> ImageError:
    """Tell a damaged supported file from a file that is not a supported image at all."""
    for signature, name in _SIGNATURES:
        if head.startswith(signature):
            return CorruptImageError(f"The file looks like a {name} image but is damaged or incomplete.")
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return CorruptImageError("The file looks like a WebP image but is damaged or incomplete.")
    return UnsupportedImageError()


def _apply_orientation(im: Image.Image) -> Image.Image:
    """Rotate/flip by the EXIF orientation tag; an unreadable EXIF block leaves the image as stored."""
    try:
        orientation = im.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:
        return im
    if orientation not in (2, 3, 4, 5, 6, 7, 8):
        return im
    transposed = ImageOps.exif_transpose(im)
    return transposed if transposed is not None else im


def _to_pixels_and_alpha(im: Image.Image) -> tuple[Image.Image, Image.Image | None]:
    """Any Pillow mode -> (8-bit RGB, or 8-bit grey "L" for a grey image; 8-bit alpha or None); alpha that is opaque
    everywhere is dropped. An image with an alpha channel of its own (LA, RGBA, PA ...) becomes RGB."""
    mode = im.mode
    alpha: Image.Image | None = None
    if mode in _HIGH_BIT_MODES:
        arr = np.asarray(im)  # (H, W) uint16 / int32 / float32
        transparent = im.info.get("transparency")
        if isinstance(transparent, (int, float)):
            alpha = Image.fromarray(np.where(arr == transparent, 0, 255).astype(np.uint8))
        pixels = Image.fromarray(_scale_to_8bit(arr))  # mode "L": a 16-bit archival scan stays grey
    elif mode in _ALPHA_MODES or im.has_transparency_data:
        rgba = im.convert("RGBA")
        alpha = rgba.getchannel("A")
        pixels = rgba.convert("RGB")
    elif mode in ("RGB", "L"):
        pixels = im
    else:  # 1, P, CMYK, YCbCr, LAB, HSV
        try:
            pixels = im.convert("RGB")
        except ValueError as exc:
            raise UnsupportedImageError(f"Images in the {mode} colour mode are not supported.") from exc
    if alpha is not None and alpha.getextrema() == (255, 255):
        alpha = None
    return pixels, alpha


def _scale_to_8bit(arr: np.ndarray) -> np.ndarray:
    """16-bit, 32-bit integer or float grey (H, W) -> uint8 (H, W), scaled by its range instead of clipped.

    Unsigned 16-bit data spans 0..65535. 32-bit integers and floats are read as 8-bit (0..255), 16-bit
    (0..65535) or unit (0..1) data when they fit one of those ranges, and stretched min..max otherwise.
    """
    if arr.dtype.kind == "u" and arr.dtype.itemsize == 2:
        scaled = arr.astype(np.float32) * np.float32(1.0 / 257.0)
    else:
        values = arr.astype(np.float32)
        finite = np.isfinite(values)
        if not finite.any():
            return np.zeros(arr.shape, dtype=np.uint8)
        lo, hi = float(values[finite].min()), float(values[finite].max())
        values = np.nan_to_num(values, nan=lo, posinf=hi, neginf=lo)
        if arr.dtype.kind == "f" and lo >= 0.0 and hi <= 1.0:
            scaled = values * np.float32(255.0)
        elif lo >= 0.0 and hi <= 255.0:
            scaled = values
        elif lo >= 0.0 and hi <= 65535.0:
            scaled = values * np.float32(1.0 / 257.0)
        else:
            scaled = (values - np.float32(lo)) * np.float32(255.0 / (hi - lo))
    scaled += np.float32(0.5)
    np.clip(scaled, 0.0, 255.0, out=scaled)
    return scaled.astype(np.uint8)


# --------------------------------------------------------------------------------------------------------------
# Lightness, chroma, working-size input and the full-resolution merge
# --------------------------------------------------------------------------------------------------------------


def _as_rgb_or_gray(img: Image.Image) -> Image.Image:
    return img if img.mode in ("RGB", "L") else img.convert("RGB")


def lightness(img: Image.Image | np.ndarray) -> np.ndarray:
    """CIE L in [0, 100] of an image (PIL, or uint8/float array (H, W) grey or (H, W, 3) sRGB): float32 (H, W)."""
    if isinstance(img, Image.Image):
        img = _as_rgb_or_gray(img)
        arr = np.asarray(img)  # (H, W) grey or (H, W, 3) RGB, uint8
    else:
        arr = np.asarray(img)
    if arr.ndim == 2:
        return color.gray_to_l(arr)
    return color.rgb_to_l(arr)


def chroma(img: Image.Image | np.ndarray) -> np.ndarray:
    """CIE ab of an sRGB image (PIL, or uint8/float array (H, W, 3)): float32 (H, W, 2) in Lab units."""
    if isinstance(img, Image.Image):
        arr = np.asarray(img if img.mode == "RGB" else img.convert("RGB"))  # (H, W, 3) uint8
    else:
        arr = np.asarray(img)
    lab = color.rgb_to_lab(arr)  # (H, W, 3)
    return np.ascontiguousarray(lab[..., 1:], dtype=np.float32)  # (H, W, 2)


MAX_MODEL_ASPECT = 4.0  # wider (or taller) photos are stretched to this aspect ratio for the model


def model_input_size(width: int, height: int, size: int) -> tuple[int, int]:
    """(width, height) of the grey picture a project model sees for a photo: about ``size`` x ``size`` pixels in
    all, with the photo's aspect ratio (up to ``MAX_MODEL_ASPECT``), so a model does the same work for any photo
    and sees its shapes unstretched, as it saw its training crops.

    A picture already within one row or column of that area keeps its size: the rule gives the same answer for
    its own output, so a model server uses what the gateway made as it is.
    """
    longer, shorter = max(width, height), min(width, height)
    if abs(width * height - size * size) <= longer and longer <= MAX_MODEL_ASPECT * shorter:
        return width, height
    root = min(max((width / height) ** 0.5, MAX_MODEL_ASPECT**-0.5), MAX_MODEL_ASPECT**0.5)
    return max(1, round(size * root)), max(1, round(size / root))


def to_model_input(rgb: Image.Image, size: int, *, preprocess: str = "lab") -> Image.Image:
    """The grey image a model sees, mode "L".

    ``preprocess="lab"`` (the project's models): :func:`model_input_size` pixels, and the grey of each pixel has
    the same CIE L as the (resized) colour pixel, so the model's input lightness is the photo's lightness;
    downscaling is bicubic with antialiasing (area-like). ``preprocess="deoldify"`` (DeOldify's published
    weights): the photo is stretched to the ``size`` x ``size`` square with Pillow's bilinear filter, then turned
    into Pillow's Rec.601 luma grey ("LA"), as DeOldify's filter does.
    """
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    if preprocess == "deoldify":
        img = rgb if rgb.mode in ("RGB", "L") else rgb.convert("RGB")
        return img.resize((size, size), Image.Resampling.BILINEAR).convert("LA").getchannel("L")
    if preprocess != "lab":
        raise ValueError(f"unknown preprocess {preprocess!r}: 'lab' or 'deoldify'")
    img = _as_rgb_or_gray(rgb)
    target = model_input_size(*img.size, size)
    if img.size != target:
        img = img.resize(target, Image.Resampling.BICUBIC, reducing_gap=3.0)
    if img.mode == "L":
        return img
    return Image.fromarray(color.rgb8_to_gray8(np.asarray(img)))  # (h, w) uint8 -> mode "L"


def model_input_bytes(grey: Image.Image) -> bytes:
    """A working-size grey image as the bytes sent to a model server: uncompressed BMP.

    Lossless like PNG, but about 15 times cheaper to write and 8 times cheaper to read (0.15 ms each way at
    256 x 256, against 2.6 ms and 1.2 ms for PNG at level 1); the extra 40 KB stay inside the cluster.
    """
    buf = io.BytesIO()
    grey.save(buf, "BMP")
    return buf.getvalue()


def _resize_plane(plane: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of one float32 plane (h, w) to ``size`` = (width, height) with Pillow's "F" mode."""
    if (plane.shape[1], plane.shape[0]) == size:
        return plane
    resized = Image.fromarray(np.ascontiguousarray(plane, dtype=np.float32)).resize(size, Image.Resampling.BILINEAR)
    return np.asarray(resized)  # (height, width) float32


def merge_chroma(original_rgb: Image.Image, colour_small: Image.Image, *, merge: str = "lab") -> Image.Image:
    """Colour result at the ORIGINAL size (mode "RGB"): the small result's chroma upsampled (bilinear) on the
    original's own lightness.

    ``merge="lab"`` (the project's models): the result's CIE ab on the original's CIE L, as :class:`LabMergeBase`
    does it (exact float32 maths for photos under ``TABLE_MERGE_MIN_PIXELS``, a lookup table above). ``merge="ycbcr"``
    (DeOldify's published weights, as its filter does): the result stretched to the original's size (Pillow bilinear,
    8-bit), then the original's Y with the result's Cb and Cr (Rec.601 YCbCr). Linear time in the number of pixels
    either way.
    """
    if merge == "ycbcr":
        original = original_rgb.convert("RGB")
        colour = colour_small.convert("RGB")
        if colour.size != original.size:
            colour = colour.resize(original.size, Image.Resampling.BILINEAR)
        y = original.convert("YCbCr").getchannel("Y")
        _, cb, cr = colour.convert("YCbCr").split()
        return Image.merge("YCbCr", (y, cb, cr)).convert("RGB")
    if merge != "lab":
        raise ValueError(f"unknown merge {merge!r}: 'lab' or 'ycbcr'")
    return to_image(LabMergeBase(original_rgb).merge(colour_small)).convert("RGB")


#: From this many pixels on, a "lab" merge reads its colours from a lookup table instead of computing them: at
#: 12 megapixels about 7 times faster per model than the exact merge with its lightness shared (10 times faster than
#: each model computing it), at the price of a 64 MB table built once per process (about a second on two busy cores).
#: The table is faster from about 0.2 megapixels on, but up to 1 megapixel the exact merge takes under 50 ms.
TABLE_MERGE_MIN_PIXELS = 1_000_000
# From this ratio of the photo's size to the result's on both sides, the table merge upsamples the result's chroma
# to half the photo's width and height (a quarter of the interpolation). On a 12-megapixel photo it differs from the
# exact merge by at most 4 levels at 13.5 times, 5 at 4.4 times (the mean 0.4 either way; full size: 2 to 3).
_HALF_CHROMA_MIN_RATIO = 8


class LabMergeBase:
    """The original's part of every "lab" merge onto it (its CIE lightness at full size): made once per photo, then
    :meth:`merge` puts each model's small colour result on it.

    Under ``TABLE_MERGE_MIN_PIXELS`` the lightness is kept exact (float32) and each merge converts Lab to sRGB in
    float32. From it on, the lightness is quantised to 8 bits (step 100/255); a merge upsamples the result's a and b
    bilinearly, rounds them to integers (offset by 128) and reads each pixel's sRGB from a table of
    :func:`color.lab_to_rgb8` over every (a, b, L) of that grid, indexed a << 16 | b << 8 | L (neighbouring pixels
    mostly differ in lightness only, so their colours lie next to each other in the table). The per-pixel loops are
    compiled (``merge_kernels``: one pass, no temporary planes) and run on bands of rows in parallel. A photo at least
    ``_HALF_CHROMA_MIN_RATIO`` times the result's size on both sides gets the chroma at half its width and height,
    each value serving a 2 x 2 block as in a JPEG's 4:2:0 chroma: a quarter of the upsampling, and the result's
    chroma is far coarser than either grid.

    Against the exact merge this differs by about 0.4 of 255 levels on average, 2 levels at the 99.9th percentile and
    at most 4 or 5 (a 12-megapixel photo from a 296 x 222 result; ``tests/unit/test_imaging.py`` checks smaller ones):
    the largest differences are in vivid colours with one channel close to 0, where the sRGB curve is steepest and a
    rounding of L, a or b moves that channel the most.
    """

    def __init__(self, original: Image.Image, *, table: bool | None = None) -> None:
        """``table``: whether merges read the lookup table (None: from ``TABLE_MERGE_MIN_PIXELS`` on)."""
        original = _as_rgb_or_gray(original)
        self.size = original.size  # (width, height)
        uses_table = original.width * original.height >= TABLE_MERGE_MIN_PIXELS if table is None else table
        self._lightness = _lightness8(original) if uses_table else lightness(original)  # (H, W)
        self._table = _lab_table() if uses_table else None  # made with the first big photo's base

    @property
    def uses_table(self) -> bool:
        return self._table is not None

    def merge(self, colour_small: Image.Image) -> np.ndarray:
        """The small colour result's chroma on this lightness, at the original's size: sRGB pixels, uint8 (H, W, 3),
        or (H, W, 4) from the table (RGB and a padding byte, as Pillow lays out RGB). :func:`encode` takes either as
        it is (no copy); :func:`to_image` makes a Pillow image of it."""
        if self._table is not None:
            return self._merge_by_table(colour_small, self._table)
        ab_small = chroma(colour_small)  # (h, w, 2) float32
        a = _resize_plane(ab_small[..., 0], self.size)  # (H, W)
        b = _resize_plane(ab_small[..., 1], self.size)  # (H, W)
        return color.lab_to_rgb8(self._lightness, a, b)  # (H, W, 3) uint8

    def _merge_by_table(self, colour_small: Image.Image, table: np.ndarray) -> np.ndarray:
        from colorizers import merge_kernels

        width, height = self.size
        ratio = min(width / colour_small.width, height / colour_small.height)
        shift = 1 if ratio >= _HALF_CHROMA_MIN_RATIO else 0  # 2 ** shift photo pixels per chroma value, each way
        ab = chroma(colour_small)  # (h, w, 2) float32
        grid = (-(-width >> shift), -(-height >> shift))  # chroma values across and down
        if ab.shape[1] > grid[0] or ab.shape[0] > grid[1]:  # the kernel upsamples; shrinking needs Pillow's filter
            ab = np.stack([_resize_plane(ab[..., channel], grid) for channel in range(2)], axis=-1)
        wide = merge_kernels.widen_chroma(ab, grid[0])
        rgbx = np.empty((height, width), dtype=np.uint32)
        _parallel(
            lambda rows: merge_kernels.lab_table_lookup(
                table, self._lightness, wide, shift, rgbx, rows.start, rows.stop
            ),
            _row_bands(width, height),
        )
        return rgbx.view(np.uint8).reshape(height, width, 4)


def warm_up_table_merge() -> None:
    """Build the merge table and compile the merge's loops now (one to two seconds of CPU, once per process) rather
    than while the first big photo waits: a server calls this in the background as it starts."""
    for mode in ("L", "RGB"):  # a grey photo's lightness is Pillow's read-only array: numba compiles a loop for each
        LabMergeBase(Image.new(mode, (4, 4)), table=True).merge(Image.new("RGB", (2, 2)))


# Quantised lightness by integer tables: each 8-bit channel value's share of the luminance Y in fixed point (white's
# three shares sum to at most _Y_ONE + 1, inside uint16), and the 8-bit L (step 100/255) of every fixed-point Y.
_Y_ONE = 65532
_Y_SHARES = np.rint(
    color.LUMINANCE_WEIGHTS[:, None] * color.srgb_to_linear(np.arange(256) / 255.0)[None, :] * _Y_ONE
).astype(np.uint16)  # (3, 256) rows R, G, B
_L_LEVELS = 255
_L8_OF_Y = np.rint(
    color.luminance_to_l(np.minimum(np.arange(1 << 16) / _Y_ONE, 1.0)) * (_L_LEVELS / color.L_MAX)
).astype(np.uint8)  # (65536,)
_L8_OF_GREY = _L8_OF_Y[_Y_SHARES.astype(np.int64).sum(axis=0)]  # (256,) the L of each grey level


def _lightness8(original: Image.Image) -> np.ndarray:
    """The 8-bit CIE L of each pixel, uint8 (H, W). A grey photo's is one table read per pixel, done by Pillow."""
    if original.mode == "L":
        return np.asarray(original.point(_L8_OF_GREY.tolist()))
    from colorizers import merge_kernels

    # mode "RGB" (``LabMergeBase``): three planes, which Pillow splits and hands over faster than the (H, W, 3) array
    red, green, blue = (np.asarray(plane) for plane in original.split())
    width, height = original.size
    l8 = np.empty((height, width), dtype=np.uint8)
    _parallel(
        lambda rows: merge_kernels.lightness8_of_rgb(
            red, green, blue, _Y_SHARES, _L8_OF_Y, l8, rows.start, rows.stop
        ),
        _row_bands(width, height),
    )
    return l8


_lab_table_rgbx: np.ndarray | None = None
_lab_table_lock = threading.Lock()


def _lab_table() -> np.ndarray:
    """sRGB of every (a + 128, b + 128, 8-bit L) as RGBX bytes in a uint32, at index (a+128) << 16 | (b+128) << 8 | L.

    Built once per process, by the first :class:`LabMergeBase` that uses it (64 MB, 2^24 colours through
    :func:`color.lab_to_rgb8`), rather than at import: most processes that import this module (training, model
    servers, the command line) never need it. The gateway builds it as it starts (:func:`warm_up_table_merge`).
    """
    global _lab_table_rgbx
    with _lab_table_lock:
        if _lab_table_rgbx is None:
            _lab_table_rgbx = _build_lab_table()
        return _lab_table_rgbx


def _build_lab_table() -> np.ndarray:
    table = np.empty((256, 256, _L_LEVELS + 1, 4), dtype=np.uint8)  # (a, b, L, RGBX)
    table[..., 3] = 255
    levels = np.arange(_L_LEVELS + 1, dtype=np.float32) * np.float32(color.L_MAX / _L_LEVELS)
    l = np.broadcast_to(levels[None, :], (256, _L_LEVELS + 1))
    b = np.broadcast_to(np.arange(-128, 128, dtype=np.float32)[:, None], (256, _L_LEVELS + 1))

    def fill(a: int) -> None:
        table[a + 128, ..., :3] = color.lab_to_rgb8(l, np.full(l.shape, a, dtype=np.float32), b)

    _parallel(fill, range(-128, 128))
    return table.view(np.uint32).reshape(-1)  # (2^24,) in index order


# Pixels per task of the merge's loops: a dozen tasks for a 12-megapixel photo keep every worker busy to the end.
_BAND_PIXELS = 1 << 20


def _row_bands(width: int, height: int) -> list[slice]:
    """Bands of rows over an image, each an even number of rows (but the last of an odd height) and in range: a
    band starts on a row of its own chroma values when they are at half the photo's height."""
    rows = max(2, _BAND_PIXELS // max(1, width) // 2 * 2)
    return [slice(top, min(top + rows, height)) for top in range(0, height, rows)]


_T = TypeVar("_T")
_R = TypeVar("_R")


_WORKER_COUNT = os.cpu_count() or 1


def _new_workers() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=_WORKER_COUNT, thread_name_prefix="imaging")


_workers = _new_workers()


def _parallel(work: Callable[[_T], _R], items: Iterable[_T]) -> list[_R]:
    """``work`` over ``items`` on the module's thread pool, results in order (numpy and Pillow release the GIL).

    Callers wait for their items, so the pool also bounds how many cores concurrent merges use together.
    """
    return list(_workers.map(work, items))


def _after_fork_in_child() -> None:
    """A forked child has none of its parent's threads: it gets a pool and a lock of its own."""
    global _workers, _lab_table_lock
    _workers, _lab_table_lock = _new_workers(), threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


# --------------------------------------------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------------------------------------------


def output_format(fmt: str) -> str:
    """Normalise an output format name ("PNG", "jpg", ".webp" ...) to a key of ``MEDIA_TYPES``."""
    key = str(fmt).strip().lower().lstrip(".")
    key = _FORMAT_ALIASES.get(key, key)
    if key not in MEDIA_TYPES:
        raise ValueError(f"Unknown output format {fmt!r}: choose one of {', '.join(MEDIA_TYPES)}.")
    return key


def to_image(pixels: Image.Image | np.ndarray) -> Image.Image:
    """A Pillow image of sRGB pixels: uint8 (H, W) grey, (H, W, 3) RGB, or (H, W, 4) RGB and a padding byte (shared
    with the array, not copied); a Pillow image as it is."""
    if isinstance(pixels, Image.Image):
        return pixels
    if pixels.ndim == 3 and pixels.shape[2] == 4:
        height, width = pixels.shape[:2]
        return Image.frombuffer("RGBX", (width, height), np.ascontiguousarray(pixels), "raw", "RGBX", 0, 1)
    return Image.fromarray(pixels)


def encode(
    image: Image.Image | np.ndarray, fmt: str = "png", *, alpha: Image.Image | None = None, quality: int = 92
) -> bytes:
    """Encode an image (or sRGB pixels, as :func:`to_image` takes them) as PNG, JPEG or WebP bytes; ``alpha`` (mode
    "L") is re-attached for PNG and WebP.

    An image that carries its own alpha band keeps it unless ``alpha`` is given. JPEG has no alpha: it is dropped.
    """
    key = output_format(fmt)
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"quality must be between 1 and 100, got {quality}")
    height, width = image.shape[:2] if isinstance(image, np.ndarray) else (image.height, image.width)
    limit = _MAX_SIDE.get(key)
    if limit is not None and max(width, height) > limit:
        raise ValueError(
            f"{key.upper()} images can be at most {limit} pixels on a side; this one is {width} x {height}. "
            "Use PNG instead."
        )
    if key == "jpeg":
        return _encode_jpeg(image, int(quality))
    image = to_image(image)
    if "A" in image.getbands():
        if alpha is None:
            alpha = image.getchannel("A")
        image = image.convert("RGB")
    elif image.mode not in _ENCODER_MODES[key]:
        image = image.convert("RGB")
    if alpha is not None:
        alpha = alpha if alpha.mode == "L" else alpha.convert("L")
        if alpha.size != image.size:
            alpha = alpha.resize(image.size, Image.Resampling.BILINEAR)
        image = image.convert("LA" if image.mode == "L" else "RGBA")
        image.putalpha(alpha)
    buf = io.BytesIO()
    if key == "png":
        image.save(buf, "PNG", compress_level=PNG_COMPRESS_LEVEL)
    else:
        image.save(buf, "WEBP", quality=int(quality), method=WEBP_METHOD)
    return buf.getvalue()


def _encode_jpeg(image: Image.Image | np.ndarray, quality: int) -> bytes:
    """libjpeg-turbo through simplejpeg, which lets go of the GIL while it works (Pillow's JPEG encoder holds it); a big
    image in bands on the module's threads (``jpeg.encode``). 4:2:0 chroma, as Pillow writes by default."""
    if isinstance(image, Image.Image):
        image = np.asarray(image if image.mode in ("L", "RGB") else image.convert("RGB"))  # JPEG has no alpha
    return jpeg.encode(image, quality, bands=_WORKER_COUNT, mapper=_parallel)
