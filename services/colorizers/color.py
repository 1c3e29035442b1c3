"""sRGB (D65, sRGB companding) <-> CIE Lab in numpy and torch; every colour constant of the project lives here."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

# --------------------------------------------------------------------------------------------------------------
# Constants (defined once; everything else imports them from here)
# --------------------------------------------------------------------------------------------------------------

#: CIE XYZ of the D65 reference white, 2-degree observer (the values scikit-image uses, so Lab computed here
#: matches ``skimage.color.rgb2lab``, which the published Zhang et al. models were trained with).
WHITE_D65 = np.array([0.95047, 1.0, 1.08883])

#: Linear sRGB (ITU-R BT.709 primaries, D65) -> CIE XYZ.
XYZ_FROM_RGB = np.array(
    [
        [0.412453, 0.357580, 0.180423],
        [0.212671, 0.715160, 0.072169],
        [0.019334, 0.119193, 0.950227],
    ]
)
#: CIE XYZ -> linear sRGB (exact inverse of ``XYZ_FROM_RGB``).
RGB_FROM_XYZ = np.linalg.inv(XYZ_FROM_RGB)
#: Relative luminance Y of linear sRGB (the middle row of ``XYZ_FROM_RGB``; sums to 1).
LUMINANCE_WEIGHTS = XYZ_FROM_RGB[1].copy()

# sRGB transfer function (IEC 61966-2-1).
SRGB_DECODE_THRESHOLD = 0.04045  # encoded value where the linear segment ends
SRGB_ENCODE_THRESHOLD = 0.0031308  # linear value where the linear segment ends
SRGB_LINEAR_SLOPE = 12.92
SRGB_OFFSET = 0.055
SRGB_GAMMA = 2.4

# CIE Lab (CIE 15:2004): f(t) = t^(1/3) above EPSILON, KAPPA * t / 116 + 16 / 116 below.
LAB_DELTA = 6.0 / 29.0
LAB_EPSILON = LAB_DELTA**3  # 216 / 24389
LAB_KAPPA = (29.0 / 3.0) ** 3  # 24389 / 27

#: Lightness range, and the centre/scale the Zhang et al. models normalise L with.
L_MIN = 0.0
L_MAX = 100.0
L_CENTER = 50.0
L_RANGE = 100.0
#: Scale of the ab channels: in-gamut sRGB ab lie within about +-110 (a in [-86, 98], b in [-108, 95]).
AB_MAX = 110.0

#: ImageNet channel statistics of sRGB in [0, 1], for encoders pretrained on ImageNet (ResNet backbones).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Matrices with the white point folded in: linear RGB -> XYZ / white, and (XYZ / white) -> linear RGB.
_XYZN_FROM_RGB = XYZ_FROM_RGB / WHITE_D65[:, None]
_RGB_FROM_XYZN = RGB_FROM_XYZ * WHITE_D65[None, :]

# --------------------------------------------------------------------------------------------------------------
# numpy: exact conversions on arrays (..., 3)
# --------------------------------------------------------------------------------------------------------------


def _float_array(x: np.ndarray) -> tuple[np.ndarray, np.dtype]:
    """Return (working array, output dtype): float64/float32 stay as they are, uint8/uint16 are scaled to [0, 1]."""
    arr = np.asarray(x)
    if arr.dtype == np.float64 or arr.dtype == np.float32:
        return arr, arr.dtype
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / np.float32(255.0), np.dtype(np.float32)
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) / np.float32(65535.0), np.dtype(np.float32)
    if arr.dtype.kind == "f":  # float16 and friends: compute in float32, return the input dtype
        return arr.astype(np.float32), arr.dtype
    return arr.astype(np.float64), np.dtype(np.float64)


def _check_last_axis(arr: np.ndarray, name: str) -> None:
    if arr.ndim == 0 or arr.shape[-1] != 3:
        raise ValueError(f"{name} must have shape (..., 3), got {arr.shape}")


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    """Undo sRGB companding: encoded values in [0, 1] -> linear light (same dtype for float input)."""
    c, out_dtype = _float_array(c)
    high = ((np.maximum(c, SRGB_DECODE_THRESHOLD) + SRGB_OFFSET) / (1.0 + SRGB_OFFSET)) ** SRGB_GAMMA
    return np.where(c > SRGB_DECODE_THRESHOLD, high, c / SRGB_LINEAR_SLOPE).astype(out_dtype, copy=False)


def linear_to_srgb(lin: np.ndarray) -> np.ndarray:
    """Apply sRGB companding: linear light -> encoded values (not clipped; same dtype for float input)."""
    lin, out_dtype = _float_array(lin)
    high = (1.0 + SRGB_OFFSET) * np.maximum(lin, SRGB_ENCODE_THRESHOLD) ** (1.0 / SRGB_GAMMA) - SRGB_OFFSET
    return np.where(lin > SRGB_ENCODE_THRESHOLD, high, lin * SRGB_LINEAR_SLOPE).astype(out_dtype, copy=False)


def _lab_f(t: np.ndarray) -> np.ndarray:
    return np.where(t > LAB_EPSILON, np.cbrt(t), t * (LAB_KAPPA / 116.0) + 16.0 / 116.0)


def _lab_f_inv(f: np.ndarray) -> np.ndarray:
    return np.where(f > LAB_DELTA, f * f * f, (f - 16.0 / 116.0) * (3.0 * LAB_DELTA**2))


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB in [0, 1], array (..., 3) -> CIE Lab (..., 3); float64/float32 keep their dtype, uint8 is read as /255."""
    arr = np.asarray(rgb)
    _check_last_axis(arr, "rgb")
    if arr.dtype == np.uint8:  # 256-entry table instead of a power per value
        linear, out_dtype = _LINEAR_OF_8BIT32[arr], np.dtype(np.float32)
    else:
        x, out_dtype = _float_array(arr)
        linear = srgb_to_linear(x)
    xyzn = linear @ _XYZN_FROM_RGB.T.astype(linear.dtype)  # (..., 3) X/Xn, Y/Yn, Z/Zn
    f = _lab_f(xyzn)
    lab = np.empty_like(f)
    lab[..., 0] = 116.0 * f[..., 1] - 16.0
    lab[..., 1] = 500.0 * (f[..., 0] - f[..., 1])
    lab[..., 2] = 200.0 * (f[..., 1] - f[..., 2])
    return lab.astype(out_dtype, copy=False)


def lab_to_rgb(lab: np.ndarray, *, clip: bool = True) -> np.ndarray:
    """CIE Lab (..., 3) -> sRGB (..., 3) in [0, 1] (clipped unless ``clip=False``); float32 in, float32 out."""
    x, out_dtype = _float_array(lab)
    _check_last_axis(x, "lab")
    f = np.empty_like(x)
    f[..., 1] = (x[..., 0] + 16.0) / 116.0
    f[..., 0] = f[..., 1] + x[..., 1] / 500.0
    f[..., 2] = f[..., 1] - x[..., 2] / 200.0
    lin = _lab_f_inv(f) @ _RGB_FROM_XYZN.T.astype(x.dtype)  # (..., 3) linear RGB
    if clip:
        np.clip(lin, 0.0, 1.0, out=lin)
    rgb = linear_to_srgb(lin)
    if clip:
        np.clip(rgb, 0.0, 1.0, out=rgb)
    return rgb.astype(out_dtype, copy=False)


def l_to_gray(l: np.ndarray) -> np.ndarray:
    """CIE L (any shape) -> the sRGB grey value in [0, 1] with that lightness (a = b = 0)."""
    x, out_dtype = _float_array(l)
    y = _lab_f_inv((x + 16.0) / 116.0)  # relative luminance (Y / Yn, Yn = 1)
    return np.clip(linear_to_srgb(np.clip(y, 0.0, 1.0)), 0.0, 1.0).astype(out_dtype, copy=False)


# --------------------------------------------------------------------------------------------------------------
# numpy fast paths for 8-bit images (12-megapixel photos): lookup tables, float32, no (H, W, 3) float copies
# --------------------------------------------------------------------------------------------------------------

_LINEAR_OF_8BIT = srgb_to_linear(np.arange(256, dtype=np.float64) / 255.0)  # (256,) float64
_LINEAR_OF_8BIT32 = _LINEAR_OF_8BIT.astype(np.float32)
# Luminance contributed by each 8-bit channel value: (3, 256) float32, rows R, G, B.
_Y_OF_8BIT = (LUMINANCE_WEIGHTS[:, None] * _LINEAR_OF_8BIT[None, :]).astype(np.float32)
# L of an 8-bit grey value.
_L_OF_GRAY8 = (116.0 * _lab_f(_LINEAR_OF_8BIT) - 16.0).astype(np.float32)
# Linear light (sampled uniformly on [0, 1]) -> rounded 8-bit sRGB; a step is < 0.06 of an 8-bit level.
_ENCODE_LUT_SIZE = 1 << 16
_encoded = np.clip(linear_to_srgb(np.linspace(0.0, 1.0, _ENCODE_LUT_SIZE)), 0.0, 1.0)  # (65536,) float64
_SRGB8_OF_LINEAR = np.round(255.0 * _encoded).astype(np.uint8)
del _encoded


# Elements per slice in the fast paths: the temporaries of one slice stay in the CPU cache.
_CHUNK = 1 << 16


def linear_to_srgb8(lin: np.ndarray) -> np.ndarray:
    """Linear light (clipped to [0, 1]) -> 8-bit sRGB via a lookup table (at most one level from exact rounding)."""
    idx = np.asarray(lin, dtype=np.float32) * np.float32(_ENCODE_LUT_SIZE - 1)
    idx += np.float32(0.5)
    np.clip(idx, 0.0, _ENCODE_LUT_SIZE - 1, out=idx)
    return _SRGB8_OF_LINEAR[idx.astype(np.uint16)]


def rgb8_to_luminance(rgb8: np.ndarray) -> np.ndarray:
    """8-bit sRGB (..., 3) uint8 -> relative luminance Y in [0, 1], float32 (...,), via per-channel tables."""
    rgb8 = np.asarray(rgb8)
    if rgb8.dtype != np.uint8:
        raise TypeError(f"rgb8 must be uint8, got {rgb8.dtype}")
    _check_last_axis(rgb8, "rgb8")
    flat = rgb8.reshape(-1, 3)  # (N, 3)
    y = np.empty(flat.shape[0], dtype=np.float32)
    tmp = np.empty(min(flat.shape[0], _CHUNK), dtype=np.float32)
    for start in range(0, flat.shape[0], _CHUNK):
        part, out = flat[start : start + _CHUNK], y[start : start + _CHUNK]
        scratch = tmp[: part.shape[0]]
        np.take(_Y_OF_8BIT[0], part[:, 0], out=out)
        np.take(_Y_OF_8BIT[1], part[:, 1], out=scratch)
        out += scratch
        np.take(_Y_OF_8BIT[2], part[:, 2], out=scratch)
        out += scratch
    return y.reshape(rgb8.shape[:-1])


def luminance_to_l(y: np.ndarray, *, inplace: bool = False) -> np.ndarray:
    """Relative luminance Y (Yn = 1) -> CIE L in [0, 100], float32; ``inplace`` reuses a float32 input's memory."""
    y = np.asarray(y)
    if y.dtype != np.float32 or not inplace or not y.flags.c_contiguous:
        y = np.array(y, dtype=np.float32, order="C")
    flat = y.reshape(-1)  # (N,) view
    low = np.empty(min(flat.size, _CHUNK), dtype=bool)
    for start in range(0, flat.size, _CHUNK):
        part = flat[start : start + _CHUNK]
        mask = low[: part.size]
        np.less_equal(part, np.float32(LAB_EPSILON), out=mask)
        linear = part * np.float32(LAB_KAPPA)  # L = kappa * Y below epsilon
        np.cbrt(part, out=part)
        part *= np.float32(116.0)
        part -= np.float32(16.0)
        np.copyto(part, linear, where=mask)
    return y


def rgb_to_l(rgb: np.ndarray) -> np.ndarray:
    """sRGB (..., 3) -> CIE L (...,) float32. uint8 input takes a lookup-table path fast enough for 12 megapixels."""
    arr = np.asarray(rgb)
    if arr.dtype == np.uint8:
        return luminance_to_l(rgb8_to_luminance(arr), inplace=True)
    x, _ = _float_array(arr)
    _check_last_axis(x, "rgb")
    y = srgb_to_linear(x) @ LUMINANCE_WEIGHTS.astype(x.dtype)  # (...,)
    return (116.0 * _lab_f(y) - 16.0).astype(np.float32)


def gray_to_l(gray: np.ndarray) -> np.ndarray:
    """sRGB grey values (any shape; uint8, or floats in [0, 1]) -> CIE L float32 of the same shape."""
    arr = np.asarray(gray)
    if arr.dtype == np.uint8:
        return _L_OF_GRAY8[arr]
    x, _ = _float_array(arr)
    return (116.0 * _lab_f(srgb_to_linear(x)) - 16.0).astype(np.float32)


def rgb8_to_gray8(rgb8: np.ndarray) -> np.ndarray:
    """8-bit sRGB (..., 3) -> the 8-bit sRGB grey (...,) of equal luminance, hence equal CIE L (a = b = 0)."""
    return linear_to_srgb8(rgb8_to_luminance(rgb8))


def _lab_f_inv32(f: np.ndarray, out: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Inverse of the Lab f on a float32 slice, written to ``out`` (``mask`` is scratch space of the same size)."""
    np.less_equal(f, np.float32(LAB_DELTA), out=mask)
    np.multiply(f, f, out=out)
    out *= f
    linear = f - np.float32(16.0 / 116.0)
    linear *= np.float32(3.0 * LAB_DELTA**2)
    np.copyto(out, linear, where=mask)
    return out


def lab_to_rgb8(l: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """CIE L, a, b planes (H, W) -> 8-bit sRGB (H, W, 3), clipped to the gamut; float32 maths, linear time.

    The planes are taken separately so a caller holding them apart (e.g. resized ab channels) makes no stacked
    copy; the work runs in slices that stay in the CPU cache. Used to merge full-resolution lightness with
    upsampled chroma.
    """
    l = np.ascontiguousarray(l, dtype=np.float32)
    a = np.ascontiguousarray(a, dtype=np.float32)
    b = np.ascontiguousarray(b, dtype=np.float32)
    if not (l.shape == a.shape == b.shape):
        raise ValueError(f"L, a and b planes must share one shape, got {l.shape}, {a.shape}, {b.shape}")
    out = np.empty((*l.shape, 3), dtype=np.uint8)
    l_flat, a_flat, b_flat = l.reshape(-1), a.reshape(-1), b.reshape(-1)  # (N,) views
    out_flat = out.reshape(-1, 3)  # (N, 3) view
    m = _RGB_FROM_XYZN.astype(np.float32)
    n = min(l_flat.size, _CHUNK)
    f = np.empty((3, n), dtype=np.float32)  # fx, fy, fz of one slice
    t = np.empty((3, n), dtype=np.float32)  # X/Xn, Y/Yn, Z/Zn of one slice
    lin, tmp = np.empty(n, dtype=np.float32), np.empty(n, dtype=np.float32)
    mask = np.empty(n, dtype=bool)
    for start in range(0, l_flat.size, _CHUNK):
        stop = min(start + _CHUNK, l_flat.size)
        k = stop - start
        fx, fy, fz = f[0, :k], f[1, :k], f[2, :k]
        np.add(l_flat[start:stop], np.float32(16.0), out=fy)
        fy *= np.float32(1.0 / 116.0)
        np.multiply(a_flat[start:stop], np.float32(1.0 / 500.0), out=fx)
        fx += fy
        np.multiply(b_flat[start:stop], np.float32(-1.0 / 200.0), out=fz)
        fz += fy
        for i in range(3):
            _lab_f_inv32(f[i, :k], t[i, :k], mask[:k])
        for c in range(3):
            np.multiply(t[0, :k], m[c, 0], out=lin[:k])
            np.multiply(t[1, :k], m[c, 1], out=tmp[:k])
            lin[:k] += tmp[:k]
            np.multiply(t[2, :k], m[c, 2], out=tmp[:k])
            lin[:k] += tmp[:k]
            out_flat[start:stop, c] = linear_to_srgb8(lin[:k])
    return out


# --------------------------------------------------------------------------------------------------------------
# Normalisation shared by models (works on numpy arrays and torch tensors alike)
# --------------------------------------------------------------------------------------------------------------


def normalize_l(l):
    """CIE L in [0, 100] -> about [-0.5, 0.5] (centre 50, range 100), the Zhang et al. input scaling."""
    return (l - L_CENTER) / L_RANGE


def denormalize_l(l_norm):
    """Inverse of :func:`normalize_l`."""
    return l_norm * L_RANGE + L_CENTER


def normalize_ab(ab, scale: float = AB_MAX):
    """CIE ab in Lab units -> about [-1, 1] (divided by ``scale``, ``AB_MAX`` unless a model says otherwise)."""
    return ab / scale


def denormalize_ab(ab_norm, scale: float = AB_MAX):
    """Inverse of :func:`normalize_ab`."""
    return ab_norm * scale


# --------------------------------------------------------------------------------------------------------------
# torch: batched, differentiable conversions on tensors (B, 3, H, W)
# --------------------------------------------------------------------------------------------------------------


@lru_cache(maxsize=32)
def _matrix_t(which: str, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    m = _XYZN_FROM_RGB if which == "xyzn_from_rgb" else _RGB_FROM_XYZN
    with torch.inference_mode(False):  # cached: must be usable by autograd even if first built in inference mode
        return torch.as_tensor(m, dtype=dtype, device=device)


def _work_dtype(x: torch.Tensor) -> torch.dtype:
    """float64 stays float64; every other dtype (float16, bfloat16, integers) is computed in float32."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _out_dtype(x: torch.Tensor) -> torch.dtype:
    return x.dtype if x.is_floating_point() else torch.float32


def _check_channels(x: torch.Tensor, name: str) -> None:
    if x.dim() < 3 or x.shape[-3] != 3:
        raise ValueError(f"{name} must have shape (B, 3, H, W), got {tuple(x.shape)}")


def srgb_to_linear_t(c: torch.Tensor) -> torch.Tensor:
    """Undo sRGB companding on a tensor; the power branch is clamped so gradients stay finite everywhere."""
    high = ((c.clamp(min=SRGB_DECODE_THRESHOLD) + SRGB_OFFSET) / (1.0 + SRGB_OFFSET)) ** SRGB_GAMMA
    return torch.where(c > SRGB_DECODE_THRESHOLD, high, c / SRGB_LINEAR_SLOPE)


def linear_to_srgb_t(lin: torch.Tensor) -> torch.Tensor:
    """Apply sRGB companding on a tensor; x^(1/2.4) is evaluated only above the threshold (finite gradient at 0)."""
    high = (1.0 + SRGB_OFFSET) * lin.clamp(min=SRGB_ENCODE_THRESHOLD) ** (1.0 / SRGB_GAMMA) - SRGB_OFFSET
    return torch.where(lin > SRGB_ENCODE_THRESHOLD, high, lin * SRGB_LINEAR_SLOPE)


def _lab_f_t(t: torch.Tensor) -> torch.Tensor:
    # The cube root is taken of t clamped to EPSILON, so its infinite slope at 0 never reaches the gradient.
    return torch.where(t > LAB_EPSILON, t.clamp(min=LAB_EPSILON) ** (1.0 / 3.0), t * (LAB_KAPPA / 116.0) + 16.0 / 116.0)


def _lab_f_inv_t(f: torch.Tensor) -> torch.Tensor:
    return torch.where(f > LAB_DELTA, f * f * f, (f - 16.0 / 116.0) * (3.0 * LAB_DELTA**2))


def rgb_to_lab_t(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB tensor (B, 3, H, W) in [0, 1] -> CIE Lab (B, 3, H, W); differentiable; float16 is computed in float32."""
    _check_channels(rgb, "rgb")
    out_dtype = _out_dtype(rgb)
    x = rgb.to(_work_dtype(rgb))
    m = _matrix_t("xyzn_from_rgb", x.dtype, x.device)
    xyzn = torch.einsum("ij,...jhw->...ihw", m, srgb_to_linear_t(x))  # (B, 3, H, W) X/Xn, Y/Yn, Z/Zn
    fx, fy, fz = _lab_f_t(xyzn).unbind(-3)  # each (B, H, W)
    lab = torch.stack((116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)), dim=-3)  # (B, 3, H, W)
    return lab.to(out_dtype)


def lab_to_rgb_t(lab: torch.Tensor, *, clamp: bool = True) -> torch.Tensor:
    """CIE Lab tensor (B, 3, H, W) -> sRGB (B, 3, H, W) clamped to [0, 1] (unless ``clamp=False``); differentiable."""
    _check_channels(lab, "lab")
    out_dtype = _out_dtype(lab)
    x = lab.to(_work_dtype(lab))
    l, a, b = x.unbind(-3)  # each (B, H, W)
    fy = (l + 16.0) / 116.0
    f = torch.stack((fy + a / 500.0, fy, fy - b / 200.0), dim=-3)  # (B, 3, H, W)
    m = _matrix_t("rgb_from_xyzn", x.dtype, x.device)
    lin = torch.einsum("ij,...jhw->...ihw", m, _lab_f_inv_t(f))  # (B, 3, H, W) linear RGB
    if clamp:
        lin = lin.clamp(0.0, 1.0)
    rgb = linear_to_srgb_t(lin)
    if clamp:
        rgb = rgb.clamp(0.0, 1.0)
    return rgb.to(out_dtype)


def gray_lab_t(l: torch.Tensor) -> torch.Tensor:
    """Lightness (B, 1, H, W) -> Lab (B, 3, H, W) with a = b = 0 (the grey image as a Lab tensor)."""
    return torch.cat((l, torch.zeros_like(l).expand(*l.shape[:-3], 2, *l.shape[-2:])), dim=-3)


def l_to_gray_rgb_t(l: torch.Tensor) -> torch.Tensor:
    """Lightness (B, 1, H, W) -> the grey sRGB image (B, 3, H, W) in [0, 1] with that lightness."""
    return lab_to_rgb_t(gray_lab_t(l))


def lab_from_l_ab_t(l: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """Lightness (B, 1, H, W) and chroma (B, 2, H, W) -> Lab (B, 3, H, W)."""
    return torch.cat((l, ab.to(l.dtype)), dim=-3)
