"""Banded JPEG encoding: the joined bands decode to exactly the pixels of a one-piece encode."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from colorizers import jpeg


def _photo(height: int, width: int, channels: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    smooth = 120 + 90 * np.sin(x / width * 6.3) * np.cos(y / height * 3.0)
    grain = np.random.default_rng(0).normal(0.0, 12.0, (height, width, channels))
    pixels = np.clip(smooth[..., None] + grain, 0, 255).astype(np.uint8)
    return pixels[..., 0] if channels == 1 else pixels


def _decoded(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


@pytest.fixture(scope="module")
def mapper():
    with ThreadPoolExecutor(2) as pool:
        yield lambda work, items: list(pool.map(work, items))


@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize("size", [(1000, 1000), (1003, 1001), (1500, 700), (700, 1500)])
@pytest.mark.parametrize("bands", [2, 3, 7])
def test_bands_decode_to_the_pixels_of_one_piece(mapper, channels, size, bands):
    pixels = _photo(*size, channels)
    whole = jpeg.encode(pixels, 90)
    banded = jpeg.encode(pixels, 90, bands=bands, mapper=mapper)
    assert banded != whole  # it was cut: restart markers between the bands
    assert banded.count(b"\xff\xdd") == 1  # one DRI segment
    decoded = _decoded(banded)
    assert decoded.shape == _decoded(whole).shape
    assert np.array_equal(decoded, _decoded(whole))


def test_small_images_and_one_band_are_one_piece(mapper):
    small = _photo(200, 300, 3)
    assert jpeg.encode(small, 90, bands=2, mapper=mapper) == jpeg.encode(small, 90)
    big = _photo(1000, 1000, 3)
    assert jpeg.encode(big, 90, bands=1, mapper=mapper) == jpeg.encode(big, 90)


def test_restart_interval_fits_its_16_bit_field(mapper):
    """A very wide image: a band of half the rows would have more MCUs than a restart interval can count."""
    pixels = _photo(700, 20000, 1)  # 2500 blocks of 8 x 8 a row, 88 rows of blocks
    banded = jpeg.encode(pixels, 80, bands=2, mapper=mapper)
    interval = int.from_bytes(banded[banded.index(b"\xff\xdd") + 4 :][:2], "big")
    assert interval <= 0xFFFF and interval % 2500 == 0
    assert np.array_equal(_decoded(banded), _decoded(jpeg.encode(pixels, 80)))


def test_bands_with_different_tables_are_refused():
    low, high = (jpeg.encode(_photo(64, 64, 3), quality) for quality in (50, 90))
    with pytest.raises(ValueError, match="different tables"):
        jpeg.join([low, high], 128, 16)
