"""The per-pixel loops of the table "lab" merge of big photos, compiled by numba (see ``imaging.LabMergeBase``).

Each kernel does one band of rows (``top`` to ``bottom``) in a single pass with no temporary arrays and without the
GIL, so that callers spread a photo's bands over threads. Imported only by a process that merges a big photo: the
first call compiles a kernel (about a second), and the compiled code is cached on disk (``__pycache__``, or numba's
user-wide cache where the package is read-only; ``NUMBA_CACHE_DIR`` overrides both).
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(nogil=True, cache=True)
def lightness8_of_rgb(
    red: np.ndarray,
    green: np.ndarray,
    blue: np.ndarray,
    y_shares: np.ndarray,
    l8_of_y: np.ndarray,
    out: np.ndarray,
    top: int,
    bottom: int,
) -> None:
    """``out[i, j]``: the 8-bit CIE L of the pixel of 8-bit channel planes ``red``, ``green`` and ``blue``, the table
    ``l8_of_y`` at its fixed-point luminance (the sum of each channel's share, ``y_shares[channel, value]``)."""
    for i in range(top, bottom):
        for j in range(out.shape[1]):
            y = y_shares[0, red[i, j]] + y_shares[1, green[i, j]] + y_shares[2, blue[i, j]]
            out[i, j] = l8_of_y[y]


@numba.njit(nogil=True, cache=True)
def widen_chroma(ab: np.ndarray, columns: int) -> np.ndarray:
    """The small result's chroma ``ab`` (h, w, 2) interpolated across to ``columns`` values a row, offset by 128.5
    (128 and half a step, so that truncation rounds): float32 (2, h, columns), a then b. Bilinear with pixel centres
    aligned and edges clamped, as Pillow's bilinear resize."""
    height, width = ab.shape[0], ab.shape[1]
    wide = np.empty((2, height, columns), dtype=np.float32)
    for c in range(columns):
        x = min(max((c + 0.5) * width / columns - 0.5, 0.0), width - 1.0)
        left = int(x)
        right = min(left + 1, width - 1)
        weight = np.float32(x - left)  # of the right neighbour
        for row in range(height):
            for channel in range(2):
                wide[channel, row, c] = (
                    ab[row, left, channel] * (np.float32(1.0) - weight)
                    + ab[row, right, channel] * weight
                    + np.float32(128.5)
                )
    return wide


@numba.njit(nogil=True, cache=True)
def lab_table_lookup(
    table: np.ndarray, l8: np.ndarray, wide: np.ndarray, shift: int, out: np.ndarray, top: int, bottom: int
) -> None:
    """``out[i, j] = table[a << 16 | b << 8 | L]``, L the pixel's 8-bit lightness ``l8[i, j]``, a and b interpolated
    down from the rows of ``widen_chroma`` (as it does across) to a grid of one value per ``1 << shift`` photo pixels
    each way, and truncated to integers."""
    height, width = l8.shape
    small_height, columns = wide.shape[1], wide.shape[2]
    rows = (height + (1 << shift) - 1) >> shift
    chroma_row = np.empty(columns, dtype=np.uint32)  # a << 16 | b << 8 of each chroma column of the current row
    current = -1
    for i in range(top, bottom):
        row = i >> shift
        if row != current:
            current = row
            y = min(max((row + 0.5) * small_height / rows - 0.5, 0.0), small_height - 1.0)
            upper = int(y)
            lower = min(upper + 1, small_height - 1)
            down = np.float32(y - upper)  # the weight of the lower row
            a_upper, a_lower, b_upper, b_lower = wide[0, upper], wide[0, lower], wide[1, upper], wide[1, lower]
            for c in range(columns):
                a = min(max(a_upper[c] * (np.float32(1.0) - down) + a_lower[c] * down, np.float32(0.0)), 255.0)
                b = min(max(b_upper[c] * (np.float32(1.0) - down) + b_lower[c] * down, np.float32(0.0)), 255.0)
                chroma_row[c] = (np.uint32(a) << 16) | (np.uint32(b) << 8)
        out_row, l8_row = out[i], l8[i]
        for j in range(width):
            out_row[j] = table[chroma_row[j >> shift] | l8_row[j]]
