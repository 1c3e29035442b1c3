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
    rgb: np.ndarray, y_shares: np.ndarray, l8_of_y: np.ndarray, out: np.ndarray, top: int, bottom: int
) -> None:
    """``out[i, j]``: the 8-bit CIE L of pixel ``rgb[i, j]``, the table of ``l8_of_y`` at its fixed-point luminance
    (the sum of each channel's share, ``y_shares[channel, value]``)."""
    for i in range(top, bottom):
        for j in range(rgb.shape[1]):
            y = y_shares[0, rgb[i, j, 0]] + y_shares[1, rgb[i, j, 1]] + y_shares[2, rgb[i, j, 2]]
            out[i, j] = l8_of_y[y]


@numba.njit(nogil=True, cache=True)
def lab_table_lookup(
    table: np.ndarray,
    l8: np.ndarray,
    a8: np.ndarray,
    b8: np.ndarray,
    shift: int,
    out: np.ndarray,
    top: int,
    bottom: int,
) -> None:
    """``out[i, j] = table[a << 16 | b << 8 | L]``: L is the pixel's 8-bit lightness ``l8[i, j]``, a and b (offset by
    128) come from chroma planes of ``1 << shift`` photo pixels per value each way (``a8[i >> shift, j >> shift]``)."""
    for i in range(top, bottom):
        row = i >> shift
        for j in range(l8.shape[1]):
            column = j >> shift
            out[i, j] = table[(np.int64(a8[row, column]) << 16) | (np.int64(b8[row, column]) << 8) | l8[i, j]]
