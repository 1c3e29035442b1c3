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
def lab_table_lookup(
    table: np.ndarray, l8: np.ndarray, ab: np.ndarray, shift: int, out: np.ndarray, top: int, bottom: int
) -> None:
    """``out[i, j] = table[a << 16 | b << 8 | L]``, L the pixel's 8-bit lightness ``l8[i, j]``, a and b (rounded, offset
    by 128) from the small result's chroma ``ab`` (h, w, 2) upsampled bilinearly (pixel centres aligned, edges
    clamped, as Pillow's bilinear resize) to a grid of one value per ``1 << shift`` photo pixels each way."""
    height, width = l8.shape
    small_height, small_width = ab.shape[0], ab.shape[1]
    columns, rows = (width + (1 << shift) - 1) >> shift, (height + (1 << shift) - 1) >> shift
    left = np.empty(columns, dtype=np.int64)
    right = np.empty(columns, dtype=np.int64)
    across = np.empty(columns, dtype=np.float32)  # the right neighbour's weight
    for c in range(columns):
        x = min(max((c + 0.5) * small_width / columns - 0.5, 0.0), small_width - 1.0)
        left[c] = int(x)
        right[c] = min(left[c] + 1, small_width - 1)
        across[c] = x - left[c]
    chroma_row = np.empty(columns, dtype=np.int64)  # a << 16 | b << 8 of each chroma column of the current row
    current = -1
    for i in range(top, bottom):
        row = i >> shift
        if row != current:
            current = row
            y = min(max((row + 0.5) * small_height / rows - 0.5, 0.0), small_height - 1.0)
            upper = int(y)
            lower = min(upper + 1, small_height - 1)
            down = y - upper
            for c in range(columns):
                index = 0
                for channel in range(2):
                    top_value = ab[upper, left[c], channel] * (1 - across[c]) + ab[upper, right[c], channel] * across[c]
                    low_value = ab[lower, left[c], channel] * (1 - across[c]) + ab[lower, right[c], channel] * across[c]
                    value = min(max(top_value * (1 - down) + low_value * down + 128.5, 0.0), 255.0)
                    index = index << 8 | int(value)
                chroma_row[c] = index << 8
        for j in range(width):
            out[i, j] = table[chroma_row[j >> shift] | l8[i, j]]
