"""Decoding every mode and format safely, the working-size grey input, the full-size chroma merge, encoding."""

from __future__ import annotations

import io
import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image
from skimage import data as skimage_data

from colorizers import color, imaging
from colorizers.imaging import (
    CorruptImageError,
    DecodedImage,
    ImageError,
    ImageTooLargeError,
    UnsupportedImageError,
    decode,
    encode,
)

W, H = 24, 16


def _save(im: Image.Image, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **params)
    return buf.getvalue()


def _rgb_array(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8)


def _grey_ramp() -> np.ndarray:
    return (np.arange(H * W).reshape(H, W) * 255 // (H * W - 1)).astype(np.uint8)  # (H, W) 0..255


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height but which carries no pixel data."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


# ----- decode: modes and formats -------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["PNG", "BMP", "TIFF", "WEBP"])
def test_rgb_lossless_formats_round_trip(fmt):
    arr = _rgb_array()
    params = {"lossless": True} if fmt == "WEBP" else {}
    out = decode(_save(Image.fromarray(arr), fmt, **params))
    assert isinstance(out, DecodedImage)
    assert out.format == fmt.lower() and out.size == (W, H) and out.rgb.mode == "RGB" and out.alpha is None
    np.testing.assert_array_equal(np.asarray(out.rgb), arr)


def test_jpeg_round_trip():
    arr = np.full((H, W, 3), (200, 120, 40), dtype=np.uint8)
    out = decode(_save(Image.fromarray(arr), "JPEG", quality=95))
    assert out.format == "jpeg" and out.rgb.mode == "RGB" and out.size == (W, H)
    assert np.abs(np.asarray(out.rgb).astype(int) - arr).max() <= 4


@pytest.mark.parametrize("fmt", ["PNG", "BMP", "TIFF"])
def test_mode_1(fmt):
    bits = (np.indices((H, W)).sum(0) % 2).astype(bool)  # checkerboard
    out = decode(_save(Image.fromarray(bits), fmt))
    expected = np.repeat(np.where(bits, 255, 0)[..., None], 3, axis=2)
    np.testing.assert_array_equal(np.asarray(out.rgb), expected)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "BMP", "TIFF"])
def test_mode_l(fmt):
    grey = _grey_ramp()
    out = decode(_save(Image.fromarray(grey), fmt))
    rgb = np.asarray(out.rgb).astype(int)
    tol = 3 if fmt == "JPEG" else 0
    assert np.abs(rgb - grey[..., None]).max() <= tol
    assert out.alpha is None


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_mode_la_keeps_alpha(fmt):
    grey, alpha = _grey_ramp(), _grey_ramp()[::-1].copy()
    out = decode(_save(Image.merge("LA", [Image.fromarray(grey), Image.fromarray(alpha)]), fmt))
    np.testing.assert_array_equal(np.asarray(out.rgb)[..., 1], grey)
    assert out.alpha is not None and out.alpha.mode == "L"
    np.testing.assert_array_equal(np.asarray(out.alpha), alpha)


@pytest.mark.parametrize("fmt", ["PNG", "TIFF", "WEBP"])
def test_mode_rgba_keeps_alpha(fmt):
    arr = _rgb_array(1)
    alpha = _grey_ramp()
    im = Image.fromarray(np.dstack([arr, alpha]))  # (H, W, 4) -> RGBA
    params = {"lossless": True, "exact": True} if fmt == "WEBP" else {}
    out = decode(_save(im, fmt, **params))
    assert out.rgb.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(out.alpha), alpha)
    visible = alpha > 0
    np.testing.assert_array_equal(np.asarray(out.rgb)[visible], arr[visible])


def test_opaque_alpha_is_dropped():
    im = Image.fromarray(np.dstack([_rgb_array(), np.full((H, W), 255, np.uint8)]))
    assert decode(_save(im, "PNG")).alpha is None


def _palette_image() -> Image.Image:
    im = Image.fromarray((np.indices((H, W))[1] % 4).astype(np.uint8), mode="P")
    im.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255])
    return im


@pytest.mark.parametrize("fmt", ["PNG", "GIF", "BMP", "TIFF"])
def test_mode_p_without_transparency(fmt):
    out = decode(_save(_palette_image(), fmt))
    rgb = np.asarray(out.rgb)
    np.testing.assert_array_equal(rgb[0, :4], [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]])
    assert out.alpha is None


@pytest.mark.parametrize("fmt", ["PNG", "GIF"])
def test_mode_p_with_transparency(fmt):
    out = decode(_save(_palette_image(), fmt, transparency=2))
    alpha = np.asarray(out.alpha)
    expected = np.where(np.indices((H, W))[1] % 4 == 2, 0, 255)
    np.testing.assert_array_equal(alpha, expected)
    np.testing.assert_array_equal(np.asarray(out.rgb)[0, 0], [255, 0, 0])


@pytest.mark.parametrize("fmt", ["JPEG", "TIFF"])
def test_mode_cmyk(fmt):
    im = Image.new("CMYK", (W, H), (0, 255, 255, 0))  # red
    out = decode(_save(im, fmt, **({"quality": 95} if fmt == "JPEG" else {})))
    assert out.rgb.mode == "RGB"
    r, g, b = np.asarray(out.rgb).reshape(-1, 3).mean(0)
    assert r > 240 and g < 15 and b < 15


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_mode_i16_is_scaled_not_clipped(fmt):
    values = np.array([[0, 257 * 64, 257 * 128, 65535]], dtype=np.uint16).repeat(4, axis=0)  # (4, 4)
    im = Image.fromarray(values)
    assert im.mode == "I;16"
    out = decode(_save(im, fmt))
    np.testing.assert_array_equal(np.asarray(out.rgb)[0, :, 0], [0, 64, 128, 255])


def test_mode_i_is_scaled_not_clipped():
    wide = np.array([[0, 1000, 30000, 65535]], dtype=np.int32).repeat(2, axis=0)  # 16-bit data in 32-bit ints
    out = decode(_save(Image.fromarray(wide), "TIFF"))
    assert np.asarray(out.rgb)[0, :, 0].tolist() == [0, 4, 117, 255]
    signed = np.array([[-1000, 0, 1000]], dtype=np.int32).repeat(2, axis=0)  # outside every range: stretched
    out = decode(_save(Image.fromarray(signed), "TIFF"))
    assert np.asarray(out.rgb)[0, :, 0].tolist() == [0, 128, 255]


def test_mode_f_is_scaled_not_clipped():
    unit = np.array([[0.0, 0.25, 0.5, 1.0]], dtype=np.float32).repeat(2, axis=0)
    out = decode(_save(Image.fromarray(unit), "TIFF"))
    assert np.asarray(out.rgb)[0, :, 0].tolist() == [0, 64, 128, 255]
    hdr = np.array([[0.0, 500.0, 1000.0, np.nan]], dtype=np.float32).repeat(2, axis=0)
    out = decode(_save(Image.fromarray(hdr), "TIFF"))
    assert np.asarray(out.rgb)[0, :, 0].tolist() == [0, 2, 4, 0]  # 16-bit range -> /257; NaN -> minimum


def test_gif_first_frame():
    red = Image.new("RGB", (W, H), (255, 0, 0))
    blue = Image.new("RGB", (W, H), (0, 0, 255))
    data = _save(red, "GIF", save_all=True, append_images=[blue], duration=100, loop=0)
    out = decode(data)
    assert out.format == "gif"
    np.testing.assert_array_equal(np.asarray(out.rgb)[0, 0], [255, 0, 0])


@pytest.mark.parametrize("fmt,params", [("PNG", {}), ("WEBP", {"lossless": True}), ("TIFF", {}), ("MPO", {})])
def test_other_multi_frame_files_give_the_first_frame(fmt, params):
    red = Image.new("RGB", (8, 8), (255, 0, 0))
    out = decode(_save(red, fmt, save_all=True, append_images=[Image.new("RGB", (8, 8), (0, 0, 255))], **params))
    assert out.format == ("jpeg" if fmt == "MPO" else fmt.lower())
    assert np.abs(np.asarray(out.rgb)[0, 0].astype(int) - [255, 0, 0]).max() <= 2


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF"])
def test_exif_orientation_applied(fmt):
    arr = np.zeros((20, 40, 3), dtype=np.uint8)  # stored 40 wide, 20 high
    arr[:8, :8] = (255, 0, 0)  # red block at the stored top-left
    if fmt == "TIFF":
        params: dict = {"tiffinfo": {0x0112: 6}}
    else:
        exif = Image.Exif()
        exif[0x0112] = 6  # displayed after rotating 90 degrees clockwise
        params = {"exif": exif, "quality": 95}
    out = decode(_save(Image.fromarray(arr), fmt, **params))
    assert out.size == (20, 40)
    rgb = np.asarray(out.rgb).astype(int)
    assert rgb[2, -3, 0] > 200 and rgb[2, 2, 0] < 50  # the block is now top-right


def test_supported_formats():
    assert imaging.SUPPORTED_INPUT_FORMATS == ("jpeg", "png", "webp", "tiff", "bmp", "gif")


# ----- decode: DCT-scaled JPEG drafts ----------------------------------------------------------------------------


def _scan(width: int = 2048, height: int = 1536) -> Image.Image:
    """A photo with real detail (scikit-image's astronaut), stretched to a scan's size."""
    return Image.fromarray(skimage_data.astronaut()).resize((width, height), Image.Resampling.BICUBIC)


def test_draft_gives_nearly_the_same_model_input():
    data = _save(_scan(), "JPEG", quality=90)
    full, draft = decode(data), decode(data, draft_size=2 * 256)
    assert not full.draft and draft.draft and draft.size == (1024, 768) and draft.format == "jpeg"
    for preprocess in ("lab", "deoldify"):
        from_full = np.asarray(imaging.to_model_input(full.rgb, 256, preprocess=preprocess)).astype(int)
        from_draft = np.asarray(imaging.to_model_input(draft.rgb, 256, preprocess=preprocess)).astype(int)
        difference = np.abs(from_draft - from_full)
        assert difference.mean() < 0.5 and difference.max() <= 8, (preprocess, difference.mean(), difference.max())


def test_draft_honours_exif_orientation():
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed after rotating 90 degrees clockwise
    data = _save(_scan(1600, 1200), "JPEG", quality=90, exif=exif)
    full, draft = decode(data), decode(data, draft_size=300)
    assert full.size == (1200, 1600) and draft.draft and draft.size == (300, 400)
    from_full = np.asarray(imaging.to_model_input(full.rgb, 128)).astype(int)
    assert np.abs(np.asarray(imaging.to_model_input(draft.rgb, 128)).astype(int) - from_full).mean() < 0.5


@pytest.mark.parametrize("mode", ["L", "CMYK"])
def test_draft_of_grey_and_cmyk_jpegs(mode):
    data = _save(_scan(1024, 768).convert(mode), "JPEG", quality=90)
    full, draft = decode(data), decode(data, draft_size=256)
    assert draft.draft and draft.rgb.mode == "RGB" and draft.size == (512, 384)
    difference = np.abs(np.asarray(full.rgb.resize(draft.size, Image.Resampling.BOX)).astype(int) - draft.rgb)
    assert difference.mean() < 2.0


def test_no_draft_when_it_would_not_shrink_or_is_not_a_jpeg():
    jpeg = _save(_scan(600, 400), "JPEG")
    assert not decode(jpeg, draft_size=256).draft  # 600 // 256 = 2, 400 // 256 = 1: scaling by 1/2 is too much
    assert decode(jpeg, draft_size=200).size == (300, 200)
    png = decode(_save(_scan(600, 400), "PNG"), draft_size=16)
    assert not png.draft and png.size == (600, 400)
    translucent = _scan(600, 400).convert("RGBA")
    translucent.putalpha(100)
    assert decode(_save(translucent, "PNG"), draft_size=16).alpha is not None
    sixteen_bit = _save(Image.fromarray(np.arange(64 * 48, dtype=np.uint16).reshape(48, 64) * 20), "PNG")
    assert np.array_equal(np.asarray(decode(sixteen_bit, draft_size=8).rgb), np.asarray(decode(sixteen_bit).rgb))


def test_draft_keeps_the_pixel_limit_of_the_full_image():
    data = _save(_scan(400, 300), "JPEG")
    with pytest.raises(ImageTooLargeError):  # checked on the header's size, before the decoder is set to scale
        decode(data, max_pixels=119_999, draft_size=50)


# ----- decode: limits and bad input ---------------------------------------------------------------------------


def test_pixel_limit():
    data = _save(Image.new("RGB", (100, 100)), "PNG")
    assert decode(data, max_pixels=10_000).size == (100, 100)
    with pytest.raises(ImageTooLargeError) as info:
        decode(data, max_pixels=9_999)
    err = info.value
    assert err.code == "image_too_large" and (err.width, err.height) == (100, 100)
    assert "megapixels" in str(err)


def test_pixel_limit_checked_before_decoding():
    # 10000 x 6000 = 60 MP claimed by the header; there are no pixels to decode, so only the header check can fire.
    with pytest.raises(ImageTooLargeError):
        decode(_png_header_only(10_000, 6_000))


def test_decompression_bomb_from_pillow_is_typed():
    # 30000 x 30000 is beyond twice Pillow's own limit, which raises while reading the header.
    with pytest.raises(ImageTooLargeError):
        decode(_png_header_only(30_000, 30_000), max_pixels=10**10)


def test_decompression_bomb_warning_as_error_is_typed():
    # Between Pillow's limit and twice it Pillow only warns; where warnings are errors it must still be typed.
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with pytest.raises(ImageTooLargeError):
            decode(_png_header_only(10_000, 10_000), max_pixels=10**10)


def test_empty_input():
    with pytest.raises(CorruptImageError) as info:
        decode(b"")
    assert info.value.code == "corrupt_image" and "empty" in str(info.value)


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "TIFF", "BMP"])
def test_truncated_input_is_corrupt(fmt):
    data = _save(Image.fromarray(_rgb_array(2)), fmt)
    for cut in (len(data) // 2, 12):
        with pytest.raises(CorruptImageError):
            decode(data[:cut])


def test_corrupt_header_is_corrupt():
    data = bytearray(_save(Image.fromarray(_rgb_array()), "PNG"))
    data[16:24] = b"\xff" * 8  # IHDR width/height, CRC now wrong
    with pytest.raises(CorruptImageError):
        decode(bytes(data))


@pytest.mark.parametrize(
    "data",
    [b"hello, this is a text file renamed to photo.jpg\n", bytes(range(256)) * 4, b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"],
)
def test_non_image_is_unsupported(data):
    with pytest.raises(UnsupportedImageError) as info:
        decode(data)
    assert info.value.code == "unsupported_image"
    assert "JPEG, PNG, WebP, TIFF, BMP or GIF" in str(info.value)


@pytest.mark.parametrize("fmt", ["ICO", "TGA", "PCX"])
def test_other_image_formats_are_unsupported(fmt):
    with pytest.raises(UnsupportedImageError):
        decode(_save(Image.new("RGB", (16, 16)), fmt))


def test_errors_are_value_errors_with_codes():
    for cls in (UnsupportedImageError, CorruptImageError, ImageTooLargeError):
        err = cls()
        assert isinstance(err, ImageError) and isinstance(err, ValueError)
        assert err.code and err.message == str(err) and str(err).endswith(".")
    with pytest.raises(TypeError):
        decode("not bytes")  # type: ignore[arg-type]


# ----- lightness, chroma, working-size input --------------------------------------------------------------------


def test_lightness_and_chroma():
    arr = _rgb_array(3)
    l = imaging.lightness(Image.fromarray(arr))
    assert l.dtype == np.float32 and l.shape == (H, W)
    lab = color.rgb_to_lab(arr.astype(np.float64) / 255.0)
    np.testing.assert_allclose(l, lab[..., 0], atol=1e-3)
    ab = imaging.chroma(Image.fromarray(arr))
    assert ab.dtype == np.float32 and ab.shape == (H, W, 2)
    np.testing.assert_allclose(ab, lab[..., 1:], atol=5e-3)
    grey = _grey_ramp()
    np.testing.assert_allclose(imaging.lightness(Image.fromarray(grey)), color.gray_to_l(grey))
    np.testing.assert_allclose(imaging.lightness(grey), color.gray_to_l(grey))


@pytest.mark.parametrize(
    ("width", "height", "size", "expected"),
    [
        (256, 256, 256, (256, 256)),
        (4000, 3000, 256, (296, 222)),  # 4:3 keeps its shape at about the square's area
        (3000, 4000, 256, (222, 296)),
        (1920, 1080, 256, (341, 192)),
        (10000, 100, 256, (512, 128)),  # beyond 4:1 the photo is stretched to 4:1
        (300, 218, 256, (300, 218)),  # within a row of the area: as it is
    ],
)
def test_model_input_size(width: int, height: int, size: int, expected: tuple[int, int]) -> None:
    assert imaging.model_input_size(width, height, size) == expected
    assert imaging.model_input_size(*expected, size) == expected  # a model server keeps what the gateway made


def test_model_input_size_is_its_own_fixed_point() -> None:
    for width in range(40, 4000, 37):
        for height in (30, 97, 480, 1000, 3001):
            for size in (64, 256, 512):
                once = imaging.model_input_size(width, height, size)
                assert imaging.model_input_size(*once, size) == once
                assert abs(once[0] * once[1] - size * size) <= max(once) or max(once) == 4 * min(once)


def test_to_model_input():
    arr = _rgb_array(4)
    small = imaging.to_model_input(Image.fromarray(arr), 8)
    assert small.mode == "L" and small.size == (10, 7)  # a 24 x 16 image keeps its 3:2 at about 8 x 8 pixels
    tiny = imaging.to_model_input(Image.fromarray(arr), 1)
    assert tiny.size == (1, 1)
    # grey of each pixel has the colour pixel's lightness
    square = Image.fromarray(arr[:, :H])
    grey = imaging.to_model_input(square, H)
    assert np.abs(imaging.lightness(grey) - imaging.lightness(square)).max() < 0.6
    # a grey photo stays exactly the same grey
    g = Image.fromarray(_grey_ramp()[:, :H])
    np.testing.assert_array_equal(np.asarray(imaging.to_model_input(g.convert("RGB"), H)), np.asarray(g))
    with pytest.raises(ValueError):
        imaging.to_model_input(square, 0)


# ----- merge_chroma ----------------------------------------------------------------------------------------------


def _lab_image(l: np.ndarray, a: np.ndarray, b: np.ndarray) -> Image.Image:
    rgb = color.lab_to_rgb(np.stack([l, a, b], -1).astype(np.float64))
    return Image.fromarray(np.round(rgb * 255).astype(np.uint8))


def test_merge_chroma_keeps_size_and_original_lightness():
    oh, ow = 157, 301
    yy, xx = np.mgrid[0:oh, 0:ow]
    original = Image.fromarray(np.repeat((60 + 130 * xx / ow).astype(np.uint8)[..., None], 3, axis=2))
    sh, sw = 32, 32
    sy, sx = np.mgrid[0:sh, 0:sw]
    colour_small = _lab_image(
        np.full((sh, sw), 50.0), 25.0 * np.cos(sx / 5.0), 25.0 * np.sin(sy / 7.0)
    )  # smooth colours, well inside the gamut
    merged = imaging.merge_chroma(original, colour_small)
    assert merged.mode == "RGB" and merged.size == original.size

    l_orig = imaging.lightness(original)
    merged_lab = color.rgb_to_lab(np.asarray(merged).astype(np.float64) / 255.0)
    unclipped = color.lab_to_rgb(
        np.dstack([l_orig, imaging.chroma(colour_small.resize(original.size, Image.Resampling.BILINEAR))]),
        clip=False,
    )
    in_gamut = ((unclipped >= 0) & (unclipped <= 1)).all(-1)
    assert in_gamut.mean() > 0.9
    assert np.abs(merged_lab[..., 0] - l_orig)[in_gamut].max() < 1.0
    # the chroma is the small result's, upsampled
    small_ab = imaging.chroma(colour_small)
    assert np.abs(merged_lab[..., 1:].mean((0, 1)) - small_ab.mean((0, 1))).max() < 2.0


def test_merge_chroma_grey_result_returns_the_original():
    original = Image.fromarray(_rgb_array(5).mean(-1).astype(np.uint8)).convert("RGB")
    merged = imaging.merge_chroma(original, Image.new("RGB", (7, 5), (90, 90, 90)))
    assert np.abs(np.asarray(merged).astype(int) - np.asarray(original)).max() <= 1


def test_merge_chroma_same_size_and_grey_original():
    original = Image.fromarray(_grey_ramp())  # mode L
    colour = Image.fromarray(_rgb_array(6))
    merged = imaging.merge_chroma(original, colour)
    assert merged.size == original.size and merged.mode == "RGB"


# ----- the lookup-table "lab" merge of big photos -----------------------------------------------------------------


def _merged(monkeypatch, original: Image.Image, colour: Image.Image, *, table: bool) -> np.ndarray:
    """The "lab" merge through the lookup table or the exact float maths, whatever the photo's size."""
    monkeypatch.setattr(imaging, "TABLE_MERGE_MIN_PIXELS", 0 if table else 10**12)
    base = imaging.LabMergeBase(original)
    assert base.uses_table == table
    merged = imaging.to_image(base.merge(colour))
    assert merged.size == original.size
    return np.asarray(merged.convert("RGB")).astype(int)


@pytest.mark.parametrize("grey", [False, True])
@pytest.mark.parametrize("result, result_size", [("chelsea", (64, 48)), ("coffee", (256, 256))])
def test_table_merge_matches_the_exact_merge(monkeypatch, grey, result, result_size):
    """Measured here: about 0.3 to 0.4 of 255 levels on average, at most 4 or 5 (the same on a 12-megapixel photo).

    The 64 x 48 result is more than 8 times smaller than the photo: its chroma is upsampled to half the photo's size.
    """
    original = _scan(1001, 701)
    if grey:
        original = original.convert("L").convert("RGB")
    colour = Image.fromarray(getattr(skimage_data, result)()).resize(result_size, Image.Resampling.BICUBIC)
    table = _merged(monkeypatch, original, colour, table=True)
    difference = np.abs(table - _merged(monkeypatch, original, colour, table=False))
    assert difference.mean() < 0.6 and difference.max() <= 8, (difference.mean(), difference.max())


@pytest.mark.parametrize("size", [(1, 37), (37, 1), (1, 1), (3, 5), (2, 999), (999, 2)])
def test_table_merge_of_odd_sizes(monkeypatch, size):
    original = _scan(*size)
    colour = Image.fromarray(skimage_data.chelsea()).resize((16, 12), Image.Resampling.BICUBIC)
    table = _merged(monkeypatch, original, colour, table=True)
    difference = np.abs(table - _merged(monkeypatch, original, colour, table=False))
    assert table.shape == (size[1], size[0], 3) and difference.mean() < 1.0 and difference.max() <= 12


def test_table_merge_keeps_the_original_lightness_and_encodes(monkeypatch):
    monkeypatch.setattr(imaging, "TABLE_MERGE_MIN_PIXELS", 0)
    original = _scan(300, 200)
    grey_result = Image.new("RGB", (8, 8), (128, 128, 128))
    merged = imaging.LabMergeBase(original).merge(grey_result)
    assert merged.shape == (200, 300, 4)  # RGB plus padding, as Pillow stores RGB: encoders take it as it is
    assert np.abs(imaging.lightness(merged[..., :3]) - imaging.lightness(original)).mean() < 0.3
    assert imaging.merge_chroma(original, grey_result).mode == "RGB"
    alpha = Image.new("L", original.size, 90)
    for fmt in ("png", "jpeg", "webp"):
        out = decode(encode(merged, fmt, alpha=alpha))
        assert out.format == fmt and out.size == original.size and (out.alpha is None) == (fmt == "jpeg")


def test_a_grey_photo_stays_grey_and_merges_like_its_rgb_copy(monkeypatch):
    """A greyscale scan decodes as one channel (``pixels``), and merges as the same photo in RGB does."""
    scan = decode(_save(_scan(301, 203).convert("L"), "JPEG", quality=90))
    assert scan.pixels.mode == "L" and scan.rgb.mode == "RGB" and scan.rgb.size == scan.size
    colour = Image.fromarray(skimage_data.chelsea()).resize((32, 24), Image.Resampling.BICUBIC)
    for table, tolerance in ((True, 0), (False, 1)):  # the exact merge's float lightness may round either way
        grey = _merged(monkeypatch, scan.pixels, colour, table=table)
        assert np.abs(grey - _merged(monkeypatch, scan.rgb, colour, table=table)).max() <= tolerance


def test_table_merge_from_the_pixel_threshold_on():
    width = 1000
    height = imaging.TABLE_MERGE_MIN_PIXELS // width
    assert imaging.LabMergeBase(Image.new("RGB", (width, height))).uses_table
    assert not imaging.LabMergeBase(Image.new("RGB", (width, height - 1))).uses_table


def test_warm_up_builds_the_table_that_merges_then_use():
    imaging.warm_up_table_merge()
    table = imaging._lab_table_rgbx
    assert table is not None and table.shape == (1 << 24,)
    assert imaging.LabMergeBase(Image.new("L", (8, 8)), table=True)._table is table


@pytest.mark.parametrize("channels", [3, 4])
def test_jpeg_of_merged_pixels_is_the_jpeg_of_their_image(channels):
    """The merge's pixel arrays (RGB, or RGB and a padding byte) encode as the Pillow image of them does."""
    pixels = np.ascontiguousarray(
        np.random.default_rng(3).integers(0, 256, (120, 160, channels), dtype=np.uint8)
    )
    from_array = decode(encode(pixels, "jpeg")).rgb
    from_image = decode(encode(imaging.to_image(pixels).convert("RGB"), "jpeg")).rgb
    assert from_array.size == (160, 120)
    assert np.array_equal(np.asarray(from_array), np.asarray(from_image))


# ----- encode -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_encode_decodes_back(fmt):
    arr = np.full((H, W, 3), (30, 140, 220), dtype=np.uint8)
    data = encode(Image.fromarray(arr), fmt)
    out = decode(data)
    assert out.format == fmt and out.size == (W, H)
    assert np.abs(np.asarray(out.rgb).astype(int) - arr).max() <= (0 if fmt == "png" else 8)
    assert set(imaging.MEDIA_TYPES) == {"png", "jpeg", "webp"}
    assert imaging.MEDIA_TYPES[fmt] == f"image/{fmt}"


@pytest.mark.parametrize("fmt,keeps_alpha", [("png", True), ("webp", True), ("jpeg", False)])
def test_encode_alpha(fmt, keeps_alpha):
    rgb = Image.fromarray(_rgb_array(7))
    alpha = Image.fromarray(_grey_ramp())
    out = decode(encode(rgb, fmt, alpha=alpha))
    if keeps_alpha:
        assert out.alpha is not None
        tol = 0 if fmt == "png" else 6
        assert np.abs(np.asarray(out.alpha).astype(int) - np.asarray(alpha)).max() <= tol
    else:
        assert out.alpha is None


def test_encode_rgba_image_keeps_its_alpha_and_aliases():
    rgba = Image.fromarray(np.dstack([_rgb_array(8), _grey_ramp()]))
    assert decode(encode(rgba, "PNG")).alpha is not None
    assert decode(encode(rgba, "jpg")).format == "jpeg"


def test_encode_rejects_unknown_format_and_bad_quality():
    with pytest.raises(ValueError, match="png, jpeg, webp"):
        encode(Image.new("RGB", (4, 4)), "bmp")
    with pytest.raises(ValueError, match="quality"):
        encode(Image.new("RGB", (4, 4)), "jpeg", quality=0)
