"""Image-quality metrics for colourisation: CIEDE2000 (numpy and torch), PSNR and colourfulness."""

from __future__ import annotations

import math

import numpy as np
import torch

# CIEDE2000 as written out by G. Sharma, W. Wu and E. N. Dalal, "The CIEDE2000 color-difference formula:
# implementation notes, supplementary test data, and mathematical observations", Color Research and
# Application 30(1), 21-30, 2005 (equations 2-22). Hue angles are in degrees, as in the paper.
_25_POW_7 = 25.0**7


def _hue_mean_and_difference(h1, h2, c1c2, xp):
    """Equations 10 and 14: hue difference dh' and mean hue h-bar' (degrees), for numpy or torch (``xp``)."""
    zero_chroma = c1c2 == 0
    diff = h2 - h1
    dh = xp.where(diff > 180.0, diff - 360.0, xp.where(diff < -180.0, diff + 360.0, diff))
    dh = xp.where(zero_chroma, xp.zeros_like(dh), dh)
    total = h1 + h2
    far = xp.abs(h1 - h2) > 180.0
    h_bar = xp.where(far, xp.where(total < 360.0, (total + 360.0) / 2.0, (total - 360.0) / 2.0), total / 2.0)
    h_bar = xp.where(zero_chroma, total, h_bar)
    return dh, h_bar


def _ciede2000(l1, a1, b1, l2, a2, b2, k_l, k_c, k_h, xp):
    """Sharma et al. (2005) equations 2-22 on matching arrays; ``xp`` is numpy or torch."""
    deg = math.pi / 180.0
    c_bar = (xp.sqrt(a1 * a1 + b1 * b1) + xp.sqrt(a2 * a2 + b2 * b2)) / 2.0
    c_bar7 = c_bar**7
    g = 0.5 * (1.0 - xp.sqrt(c_bar7 / (c_bar7 + _25_POW_7)))
    a1p, a2p = (1.0 + g) * a1, (1.0 + g) * a2
    c1p, c2p = xp.sqrt(a1p * a1p + b1 * b1), xp.sqrt(a2p * a2p + b2 * b2)
    # h' = atan2(b, a') in [0, 360); the paper sets h' = 0 when a' = b = 0 (atan2 of signed zeros may give 180).
    h1p = xp.where(c1p == 0, xp.zeros_like(c1p), xp.remainder(xp.arctan2(b1, a1p) / deg, 360.0))
    h2p = xp.where(c2p == 0, xp.zeros_like(c2p), xp.remainder(xp.arctan2(b2, a2p) / deg, 360.0))
    c1c2 = c1p * c2p
    dh, h_bar = _hue_mean_and_difference(h1p, h2p, c1c2, xp)
    d_l = l2 - l1
    d_c = c2p - c1p
    d_h = 2.0 * xp.sqrt(c1c2) * xp.sin(dh * (deg / 2.0))
    l_bar = (l1 + l2) / 2.0
    cp_bar = (c1p + c2p) / 2.0
    t = (
        1.0
        - 0.17 * xp.cos((h_bar - 30.0) * deg)
        + 0.24 * xp.cos(2.0 * h_bar * deg)
        + 0.32 * xp.cos((3.0 * h_bar + 6.0) * deg)
        - 0.20 * xp.cos((4.0 * h_bar - 63.0) * deg)
    )
    d_theta = 30.0 * xp.exp(-(((h_bar - 275.0) / 25.0) ** 2))
    cp_bar7 = cp_bar**7
    r_c = 2.0 * xp.sqrt(cp_bar7 / (cp_bar7 + _25_POW_7))
    l50 = (l_bar - 50.0) ** 2
    s_l = 1.0 + 0.015 * l50 / xp.sqrt(20.0 + l50)
    s_c = 1.0 + 0.045 * cp_bar
    s_h = 1.0 + 0.015 * cp_bar * t
    r_t = -xp.sin(2.0 * d_theta * deg) * r_c
    tl, tc, th = d_l / (k_l * s_l), d_c / (k_c * s_c), d_h / (k_h * s_h)
    return xp.sqrt(tl * tl + tc * tc + th * th + r_t * tc * th)


def delta_e00(
    lab1: np.ndarray, lab2: np.ndarray, *, k_l: float = 1.0, k_c: float = 1.0, k_h: float = 1.0
) -> np.ndarray:
    """CIEDE2000 colour difference of CIE Lab arrays (..., 3) (broadcast against each other) -> (...) float64.

    The Sharma, Wu and Dalal (2005) formulation; ``k_l``, ``k_c``, ``k_h`` are the parametric factors (1 for
    reference conditions). Symmetric in its arguments.
    """
    x1 = np.asarray(lab1, dtype=np.float64)
    x2 = np.asarray(lab2, dtype=np.float64)
    for name, x in (("lab1", x1), ("lab2", x2)):
        if x.ndim == 0 or x.shape[-1] != 3:
            raise ValueError(f"{name} must have shape (..., 3), got {x.shape}")
    x1, x2 = np.broadcast_arrays(x1, x2)
    return _ciede2000(x1[..., 0], x1[..., 1], x1[..., 2], x2[..., 0], x2[..., 1], x2[..., 2], k_l, k_c, k_h, np)


def delta_e00_t(
    lab1: torch.Tensor, lab2: torch.Tensor, *, k_l: float = 1.0, k_c: float = 1.0, k_h: float = 1.0
) -> torch.Tensor:
    """CIEDE2000 of CIE Lab tensors (B, 3, H, W) -> (B, H, W); the channel axis is dim -3 (any leading dims).

    Computed in float32 (float64 stays float64) on the inputs' device, for validation on batches; the result
    matches :func:`delta_e00`. A metric, not a training loss: its gradient is undefined where chroma is zero.
    """
    for name, x in (("lab1", lab1), ("lab2", lab2)):
        if x.dim() < 3 or x.shape[-3] != 3:
            raise ValueError(f"{name} must have shape (B, 3, H, W), got {tuple(x.shape)}")
    dtype = torch.float64 if torch.float64 in (lab1.dtype, lab2.dtype) else torch.float32
    l1, a1, b1 = lab1.to(dtype).unbind(-3)  # each (B, H, W)
    l2, a2, b2 = lab2.to(dtype).unbind(-3)  # each (B, H, W)
    return _ciede2000(l1, a1, b1, l2, a2, b2, k_l, k_c, k_h, torch)


def psnr(rgb_a: np.ndarray, rgb_b: np.ndarray, *, max_value: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB of two uint8 RGB images (H, W, 3) of one shape; ``inf`` when identical."""
    a, b = np.asarray(rgb_a), np.asarray(rgb_b)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} and {b.shape}")
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(max_value * max_value / mse)


def colourfulness(rgb: np.ndarray) -> float:
    """Colourfulness M of Hasler and Süsstrunk (2003) of an sRGB image (H, W, 3) in 0-255; 0 for a grey image.

    rg = R - G, yb = (R + G) / 2 - B over all pixels; M = sqrt(std_rg^2 + std_yb^2) + 0.3 sqrt(mean_rg^2 +
    mean_yb^2) (D. Hasler and S. Süsstrunk, "Measuring colourfulness in natural images", Proc. SPIE 5007, 2003).
    """
    arr = np.asarray(rgb, dtype=np.float64)
    if arr.ndim < 2 or arr.shape[-1] != 3:
        raise ValueError(f"rgb must have shape (H, W, 3), got {arr.shape}")
    flat = arr.reshape(-1, 3)  # (N, 3) every pixel
    r, g, b = flat[:, 0], flat[:, 1], flat[:, 2]
    rg = r - g
    yb = 0.5 * (r + g) - b
    spread = math.sqrt(float(rg.var()) + float(yb.var()))
    mean = math.sqrt(float(rg.mean()) ** 2 + float(yb.mean()) ** 2)
    return spread + 0.3 * mean
