"""JPEG encoding with libjpeg-turbo (simplejpeg, which lets go of the GIL while it works), big images in pieces.

A baseline JPEG is one sequence of 8 x 8 blocks, so one encoder works on one core. A big image is cut into bands of
whole MCU rows (16 pixel rows with 4:2:0 chroma), each band is encoded on its own (several cores at once), and the
bands' compressed data are joined into one JPEG with restart markers between them: a DRI segment sets the restart
interval to one band's MCUs, and a decoder resets its DC predictions at each marker, as each band's encoder started
from zero. Every band is encoded with the same quality and the standard Huffman tables, so the joined file decodes
to exactly the pixels of a one-piece encode (``tests/unit/test_jpeg.py``).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import simplejpeg

#: Images from this many pixels on are encoded in bands (a 12-megapixel photo takes about 70 ms in one piece).
BAND_MIN_PIXELS = 1_000_000
_COLORSPACES = {1: "GRAY", 3: "RGB", 4: "RGBX"}  # by the number of channels of the pixels
_MAX_RESTART_INTERVAL = 0xFFFF  # MCUs: the DRI field is 16 bits
_SOF0, _DHT, _DQT, _SOS, _DRI, _RST0, _EOI = 0xC0, 0xC4, 0xDB, 0xDA, 0xDD, 0xD0, 0xD9

Mapper = Callable[[Callable[[Any], bytes], Iterable[Any]], Sequence[bytes]]


def encode(pixels: np.ndarray, quality: int, *, bands: int = 1, mapper: Mapper | None = None) -> bytes:
    """JPEG bytes of uint8 pixels (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGB and a padding byte; 4:2:0 chroma.

    ``bands`` > 1 splits an image of at least ``BAND_MIN_PIXELS`` into about that many bands, encoded through
    ``mapper`` (a ``map`` that runs on several threads, results in order).
    """
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    height, width = pixels.shape[:2]
    mcu = 8 if pixels.shape[2] == 1 else 16  # pixel rows (and columns) per MCU
    mcus_per_row = -(-width // mcu)
    rows_per_band = -(-height // max(1, bands * mcu)) * mcu  # whole MCU rows
    rows_per_band = min(rows_per_band, _MAX_RESTART_INTERVAL // mcus_per_row * mcu)
    if mapper is None or height * width < BAND_MIN_PIXELS or not 0 < rows_per_band < height:
        return _encode_one(pixels, quality)
    tops = range(0, height, rows_per_band)
    pieces = mapper(lambda top: _encode_one(pixels[top : top + rows_per_band], quality), tops)
    return join(pieces, height, mcus_per_row * rows_per_band // mcu)


def _encode_one(pixels: np.ndarray, quality: int) -> bytes:
    return simplejpeg.encode_jpeg(
        np.ascontiguousarray(pixels), quality=quality, colorspace=_COLORSPACES[pixels.shape[2]], colorsubsampling="420"
    )


def join(pieces: Sequence[bytes], height: int, restart_interval: int) -> bytes:
    """One JPEG of ``height`` rows from the JPEGs of consecutive bands, each band but the last ``restart_interval``
    MCUs. Their tables must be the same (they are when encoded alike); a mismatch raises ``ValueError``."""
    header, sos, first = _split(pieces[0])
    parts = [b"\xff\xd8", _with_height(header, height), _segment(_DRI, struct.pack(">H", restart_interval)), sos]
    parts.append(first)
    for index, piece in enumerate(pieces[1:]):
        piece_header, piece_sos, data = _split(piece)
        if _tables(piece_header) != _tables(header) or piece_sos != sos:
            raise ValueError("the bands were encoded with different tables")
        parts += [bytes((0xFF, _RST0 + index % 8)), data]
    parts.append(b"\xff\xd9")
    return b"".join(parts)


def _split(jpeg: bytes) -> tuple[list[tuple[int, bytes]], bytes, bytes]:
    """(the segments before the scan as (marker, payload), the SOS segment, the compressed data) of a baseline JPEG."""
    segments: list[tuple[int, bytes]] = []
    offset = 2  # after SOI
    while True:
        marker, length = jpeg[offset + 1], struct.unpack(">H", jpeg[offset + 2 : offset + 4])[0]
        end = offset + 2 + length
        if marker == _SOS:
            if jpeg[-2:] != b"\xff\xd9":
                raise ValueError("the JPEG does not end with EOI")
            return segments, jpeg[offset:end], jpeg[end:-2]
        segments.append((marker, jpeg[offset + 4 : end]))
        offset = end


def _tables(segments: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
    return [(marker, payload) for marker, payload in segments if marker in (_DQT, _DHT)]


def _with_height(segments: list[tuple[int, bytes]], height: int) -> bytes:
    """The segments as bytes, the frame header's (SOF0) height set to ``height``."""
    out = []
    for marker, payload in segments:
        if marker == _SOF0:  # precision (1 byte), height (2), width (2), components...
            payload = payload[:1] + struct.pack(">H", height) + payload[3:]
        out.append(_segment(marker, payload))
    return b"".join(out)


def _segment(marker: int, payload: bytes) -> bytes:
    return bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload
