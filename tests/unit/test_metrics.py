"""CIEDE2000, PSNR and colourfulness: published test data, scikit-image, torch against numpy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.color import deltaE_ciede2000

from training.metrics import colourfulness, delta_e00, delta_e00_t, psnr

# Table 1 of G. Sharma, W. Wu and E. N. Dalal, "The CIEDE2000 color-difference formula: implementation notes,
# supplementary test data, and mathematical observations", Color Research and Application 30(1), 21-30 (2005):
# L1, a1, b1, L2, a2, b2, expected dE00 (4 decimals). The pairs exercise the hue wrap-around at 180 degrees,
# zero chroma and the blue-region rotation term.
SHARMA_2005 = [
    (50.0000, 2.6772, -79.7751, 50.0000, 0.0000, -82.7485, 2.0425),
    (50.0000, 3.1571, -77.2803, 50.0000, 0.0000, -82.7485, 2.8615),
    (50.0000, 2.8361, -74.0200, 50.0000, 0.0000, -82.7485, 3.4412),
    (50.0000, -1.3802, -84.2814, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, -1.1848, -84.8006, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, -0.9009, -85.5211, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, 0.0000, 0.0000, 50.0000, -1.0000, 2.0000, 2.3669),
    (50.0000, -1.0000, 2.0000, 50.0000, 0.0000, 0.0000, 2.3669),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0009, 7.1792),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0010, 7.1792),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0011, 7.2195),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0012, 7.2195),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0009, -2.4900, 4.8045),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0010, -2.4900, 4.8045),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0011, -2.4900, 4.7461),
    (50.0000, 2.5000, 0.0000, 50.0000, 0.0000, -2.5000, 4.3065),
    (50.0000, 2.5000, 0.0000, 73.0000, 25.0000, -18.0000, 27.1492),
    (50.0000, 2.5000, 0.0000, 61.0000, -5.0000, 29.0000, 22.8977),
    (50.0000, 2.5000, 0.0000, 56.0000, -27.0000, -3.0000, 31.9030),
    (50.0000, 2.5000, 0.0000, 58.0000, 24.0000, 15.0000, 19.4535),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.1736, 0.5854, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.2972, 0.0000, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 1.8634, 0.5757, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.2592, 0.3350, 1.0000),
    (60.2574, -34.0099, 36.2677, 60.4626, -34.1751, 39.4387, 1.2644),
    (63.0109, -31.0961, -5.8663, 62.8187, -29.7946, -4.0864, 1.2630),
    (61.2901, 3.7196, -5.3901, 61.4292, 2.2480, -4.9620, 1.8731),
    (35.0831, -44.1164, 3.7933, 35.0232, -40.0716, 1.5901, 1.8645),
    (22.7233, 20.0904, -46.6940, 23.0331, 14.9730, -42.5619, 2.0373),
    (36.4612, 47.8580, 18.3852, 36.2715, 50.5065, 21.2231, 1.4146),
    (90.8027, -2.0831, 1.4410, 91.1528, -1.6435, 0.0447, 1.4441),
    (90.9257, -0.5406, -0.9208, 88.6381, -0.8985, -0.7239, 1.5381),
    (6.7747, -0.2908, -2.4247, 5.8714, -0.0985, -2.2286, 0.6377),
    (2.0776, 0.0795, -1.1350, 0.9033, -0.0636, -0.5514, 0.9082),
]


def _sharma_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    table = np.array(SHARMA_2005)  # (34, 7)
    return table[:, 0:3], table[:, 3:6], table[:, 6]


def _random_lab(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    l = rng.uniform(0.0, 100.0, shape)
    ab = rng.uniform(-128.0, 127.0, (*shape, 2))
    return np.concatenate([l[..., None], ab], axis=-1)  # (*shape, 3)


def test_sharma_published_pairs() -> None:
    lab1, lab2, expected = _sharma_arrays()
    np.testing.assert_allclose(delta_e00(lab1, lab2), expected, atol=5e-5)


def test_sharma_pairs_are_symmetric() -> None:
    lab1, lab2, expected = _sharma_arrays()
    np.testing.assert_allclose(delta_e00(lab2, lab1), expected, atol=5e-5)


def test_matches_scikit_image_on_random_pairs() -> None:
    rng = np.random.default_rng(0)
    lab1, lab2 = _random_lab(rng, (64, 48)), _random_lab(rng, (64, 48))
    np.testing.assert_allclose(delta_e00(lab1, lab2), deltaE_ciede2000(lab1, lab2), rtol=0, atol=1e-9)


def test_near_pairs_and_greys_match_scikit_image() -> None:
    # Small differences and (near-)neutral colours are what a colouriser's errors look like.
    rng = np.random.default_rng(1)
    lab1 = _random_lab(rng, (2000,)) * np.array([1.0, 0.05, 0.05])
    lab2 = lab1 + rng.normal(0.0, 2.0, lab1.shape)
    lab2[:500, 1:] = 0.0  # grey against colour, as the grey baseline is scored
    np.testing.assert_allclose(delta_e00(lab1, lab2), deltaE_ciede2000(lab1, lab2), rtol=0, atol=1e-9)


def test_identical_colours_differ_by_zero() -> None:
    lab = _random_lab(np.random.default_rng(2), (10,))
    assert np.all(delta_e00(lab, lab) == 0.0)
    assert delta_e00(np.zeros(3), np.zeros(3)) == 0.0


def test_broadcasts_and_rejects_wrong_shapes() -> None:
    lab = _random_lab(np.random.default_rng(3), (4, 5))
    grey = np.array([50.0, 0.0, 0.0])
    assert delta_e00(lab, grey).shape == (4, 5)
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
        delta_e00(np.zeros((4, 2)), np.zeros((4, 2)))


def test_torch_matches_numpy() -> None:
    rng = np.random.default_rng(4)
    lab1, lab2 = _random_lab(rng, (2, 16, 12)), _random_lab(rng, (2, 16, 12))  # (B, H, W, 3)
    expected = delta_e00(lab1, lab2)  # (B, H, W)
    t1 = torch.from_numpy(lab1).permute(0, 3, 1, 2)  # (B, 3, H, W)
    t2 = torch.from_numpy(lab2).permute(0, 3, 1, 2)  # (B, 3, H, W)
    got64 = delta_e00_t(t1, t2)
    assert got64.shape == (2, 16, 12) and got64.dtype == torch.float64
    np.testing.assert_allclose(got64.numpy(), expected, rtol=0, atol=1e-9)
    got32 = delta_e00_t(t1.float(), t2.half())
    assert got32.dtype == torch.float32
    np.testing.assert_allclose(got32.numpy(), delta_e00(lab1, t2.half().double().permute(0, 2, 3, 1)), atol=2e-3)


def test_torch_on_sharma_pairs() -> None:
    lab1, lab2, expected = _sharma_arrays()
    t1 = torch.from_numpy(lab1).T.reshape(1, 3, -1, 1)  # (1, 3, 34, 1)
    t2 = torch.from_numpy(lab2).T.reshape(1, 3, -1, 1)  # (1, 3, 34, 1)
    np.testing.assert_allclose(delta_e00_t(t1, t2).reshape(-1).numpy(), expected, atol=5e-5)
    np.testing.assert_allclose(delta_e00_t(t1.float(), t2.float()).reshape(-1).numpy(), expected, atol=1e-3)


def test_torch_rejects_channels_last() -> None:
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        delta_e00_t(torch.zeros(1, 8, 8, 3), torch.zeros(1, 8, 8, 3))


def test_psnr() -> None:
    rng = np.random.default_rng(5)
    a = rng.integers(0, 256, (8, 9, 3), dtype=np.uint8)
    assert psnr(a, a) == math.inf
    b = a.copy()
    b[0, 0, 0] ^= 1  # one channel of one pixel off by one level
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 * a.size))
    assert psnr(np.zeros_like(a), np.full_like(a, 255)) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="shape"):
        psnr(a, a[:4])


def test_colourfulness() -> None:
    grey = np.repeat(np.random.default_rng(6).integers(0, 256, (10, 10, 1), dtype=np.uint8), 3, axis=2)
    assert colourfulness(grey) == 0.0
    red = np.zeros((4, 4, 3), dtype=np.uint8)
    red[..., 0] = 255
    # Uniform red: no spread; mean rg = 255, mean yb = 127.5.
    assert colourfulness(red) == pytest.approx(0.3 * math.hypot(255.0, 127.5))
    half = np.zeros((2, 1, 3))
    half[0] = (255.0, 0.0, 0.0)  # rg, yb = 255, 127.5 and 0, 0 on the black pixel
    expected = math.hypot(127.5, 63.75) + 0.3 * math.hypot(127.5, 63.75)
    assert colourfulness(half) == pytest.approx(expected)
    rng = np.random.default_rng(7)
    photo = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    assert colourfulness(photo) > colourfulness(photo // 4 + 96)  # washed-out copy is less colourful
