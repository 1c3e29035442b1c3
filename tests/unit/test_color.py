"""sRGB <-> CIE Lab in numpy and torch, checked against scikit-image and against each other."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.color import lab2rgb, rgb2lab

from colorizers import color

EDGE_COLOURS = np.array(
    [
        [0.0, 0.0, 0.0],
        [1.0, 1.0, 1.0],
        [1.0, 0.0, 0.0],
        [0.0, 1.0, 0.0],
        [0.0, 0.0, 1.0],
        [0.0, 1.0, 1.0],
        [1.0, 0.0, 1.0],
        [1.0, 1.0, 0.0],
        [0.5, 0.5, 0.5],
        [1e-6, 1e-6, 1e-6],
        [1e-4, 0.0, 0.0],
        [1e-3, 2e-3, 3e-3],
        [0.04045, 0.04045, 0.04045],  # the sRGB linear/power boundary
        [0.0405, 0.0404, 0.04],
        [0.0031308, 0.0, 0.0],
        [0.08, 0.08, 0.08],  # Y near the Lab epsilon
    ]
)


@pytest.fixture(scope="module")
def colours() -> np.ndarray:
    rng = np.random.default_rng(1)
    return np.concatenate([EDGE_COLOURS, rng.random((2000, 3)), rng.random((200, 3)) ** 6])  # (N, 3), many darks


def test_rgb_to_lab_matches_skimage(colours):
    lab = color.rgb_to_lab(colours)
    assert lab.dtype == np.float64
    assert np.abs(lab - rgb2lab(colours)).max() < 1e-3


def test_lab_to_rgb_matches_skimage(colours):
    lab = rgb2lab(colours)
    assert np.abs(color.lab_to_rgb(lab) - lab2rgb(lab)).max() < 1e-4


def test_round_trip_float64(colours):
    assert np.abs(color.lab_to_rgb(color.rgb_to_lab(colours)) - colours).max() < 1e-4


def test_float32_keeps_dtype_and_accuracy(colours):
    rgb32 = colours.astype(np.float32)
    lab32 = color.rgb_to_lab(rgb32)
    assert lab32.dtype == np.float32
    assert np.abs(lab32 - rgb2lab(colours)).max() < 5e-3
    back = color.lab_to_rgb(lab32)
    assert back.dtype == np.float32
    assert np.abs(back - colours).max() < 1e-3


def test_shapes_any_leading_dims():
    rgb = np.random.default_rng(2).random((2, 3, 5, 3))
    lab = color.rgb_to_lab(rgb)
    assert lab.shape == rgb.shape
    np.testing.assert_allclose(color.rgb_to_lab(rgb[1, 2, 4]), lab[1, 2, 4], atol=1e-12)
    with pytest.raises(ValueError):
        color.rgb_to_lab(np.zeros((4, 4)))


def test_white_and_black():
    np.testing.assert_allclose(color.rgb_to_lab(np.array([1.0, 1.0, 1.0])), [100.0, 0.0, 0.0], atol=1e-2)
    np.testing.assert_allclose(color.rgb_to_lab(np.array([0.0, 0.0, 0.0])), [0.0, 0.0, 0.0], atol=1e-9)


def test_lab_to_rgb_clips_out_of_gamut():
    lab = np.array([[50.0, 120.0, -120.0], [100.0, 0.0, 0.0], [0.0, -100.0, 100.0], [120.0, 0.0, 0.0]])
    rgb = color.lab_to_rgb(lab)
    assert rgb.min() >= 0.0 and rgb.max() <= 1.0
    assert color.lab_to_rgb(lab, clip=False).max() > 1.0


def test_uint8_input_is_read_as_unit_range():
    rgb8 = np.random.default_rng(3).integers(0, 256, (10, 3), dtype=np.uint8)
    np.testing.assert_allclose(color.rgb_to_lab(rgb8), color.rgb_to_lab(rgb8 / 255.0), atol=2e-3)


def test_constants():
    np.testing.assert_allclose(color.XYZ_FROM_RGB @ color.RGB_FROM_XYZ, np.eye(3), atol=1e-12)
    assert color.LUMINANCE_WEIGHTS.sum() == pytest.approx(1.0, abs=1e-6)
    assert color.LAB_EPSILON == pytest.approx(216 / 24389)
    assert color.LAB_KAPPA == pytest.approx(24389 / 27)
    assert color.AB_MAX == 110.0
    # every in-gamut colour has |a|, |b| within AB_MAX
    cube = np.stack(np.meshgrid(*[np.linspace(0, 1, 17)] * 3, indexing="ij"), -1).reshape(-1, 3)  # (17^3, 3)
    assert np.abs(color.rgb_to_lab(cube)[:, 1:]).max() < color.AB_MAX


def test_normalisation_round_trip():
    l = np.array([0.0, 50.0, 100.0])
    np.testing.assert_allclose(color.normalize_l(l), [-0.5, 0.0, 0.5])
    np.testing.assert_allclose(color.denormalize_l(color.normalize_l(l)), l)
    ab = torch.tensor([-110.0, 55.0])
    assert torch.allclose(color.denormalize_ab(color.normalize_ab(ab)), ab)
    assert torch.allclose(color.normalize_ab(ab, scale=128.0), ab / 128.0)


# ----- fast 8-bit paths ---------------------------------------------------------------------------------------


def test_rgb_to_l_uint8_matches_exact():
    rng = np.random.default_rng(4)
    rgb8 = np.concatenate([rng.integers(0, 256, (64, 64, 3), dtype=np.uint8).reshape(-1, 3), np.eye(3, dtype=np.uint8)])
    l = color.rgb_to_l(rgb8)
    assert l.dtype == np.float32 and l.shape == (rgb8.shape[0],)
    np.testing.assert_allclose(l, rgb2lab(rgb8 / 255.0)[..., 0], atol=1e-3)


def test_rgb_to_l_float_and_gray_to_l():
    rgb = np.random.default_rng(5).random((7, 3))
    np.testing.assert_allclose(color.rgb_to_l(rgb), rgb2lab(rgb)[:, 0], atol=1e-3)
    grey8 = np.arange(256, dtype=np.uint8)
    expected = rgb2lab(np.repeat(grey8[:, None] / 255.0, 3, axis=1))[:, 0]
    np.testing.assert_allclose(color.gray_to_l(grey8), expected, atol=1e-3)
    np.testing.assert_allclose(color.gray_to_l(grey8 / 255.0), expected, atol=1e-3)


def test_luminance_to_l_does_not_touch_input_unless_asked():
    y = np.array([0.0, 0.001, 0.5, 1.0], dtype=np.float32)
    before = y.copy()
    l = color.luminance_to_l(y)
    np.testing.assert_array_equal(y, before)
    np.testing.assert_allclose(l, [0.0, color.LAB_KAPPA * 0.001, 116 * 0.5 ** (1 / 3) - 16, 100.0], atol=1e-3)


def test_l_to_gray_inverts_gray_to_l():
    grey = np.linspace(0.0, 1.0, 101)
    np.testing.assert_allclose(color.l_to_gray(color.gray_to_l(grey).astype(np.float64)), grey, atol=1e-5)


def test_linear_to_srgb8_within_one_level():
    lin = np.random.default_rng(6).random(100_000).astype(np.float32) ** 3
    exact = np.round(color.linear_to_srgb(lin.astype(np.float64)) * 255.0)
    assert np.abs(color.linear_to_srgb8(lin).astype(int) - exact).max() <= 1


def test_lab_to_rgb8_matches_float_path():
    rng = np.random.default_rng(7)
    shape = (300, 250)  # more elements than one internal slice
    l = rng.uniform(0, 100, shape).astype(np.float32)
    a = rng.uniform(-60, 60, shape).astype(np.float32)
    b = rng.uniform(-60, 60, shape).astype(np.float32)
    out = color.lab_to_rgb8(l, a, b)
    assert out.dtype == np.uint8 and out.shape == (*shape, 3)
    exact = np.round(color.lab_to_rgb(np.stack([l, a, b], -1).astype(np.float64)) * 255.0)
    assert np.abs(out.astype(int) - exact).max() <= 1
    assert (out.astype(int) != exact).mean() < 0.01
    in_gamut = rgb2lab(rng.random((2000, 3))).astype(np.float32)  # (N, 3)
    out = color.lab_to_rgb8(in_gamut[:, 0], in_gamut[:, 1], in_gamut[:, 2])
    assert np.abs(out.astype(int) - np.round(lab2rgb(in_gamut.astype(np.float64)) * 255.0)).max() <= 1


def test_rgb8_to_gray8_keeps_lightness():
    rgb8 = np.random.default_rng(8).integers(0, 256, (500, 3), dtype=np.uint8)
    grey = color.rgb8_to_gray8(rgb8)
    assert grey.dtype == np.uint8 and grey.shape == (500,)
    assert np.abs(color.gray_to_l(grey) - color.rgb_to_l(rgb8)).max() < 0.6  # half an 8-bit step of L at most
    levels = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(color.rgb8_to_gray8(np.repeat(levels[:, None], 3, axis=1)), levels)


# ----- torch ---------------------------------------------------------------------------------------------------


def _as_image_tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(rgb.T)).reshape(1, 3, -1, 1)  # (N, 3) -> (1, 3, N, 1)


def _from_image_tensor(t: torch.Tensor) -> np.ndarray:
    return t.detach().reshape(3, -1).T.numpy()  # (1, 3, N, 1) -> (N, 3)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_torch_matches_numpy(colours, dtype):
    t = _as_image_tensor(colours).to(dtype)
    lab_t = color.rgb_to_lab_t(t)
    assert lab_t.dtype == dtype and lab_t.shape == t.shape
    tol = 1e-9 if dtype == torch.float64 else 5e-3
    np.testing.assert_allclose(_from_image_tensor(lab_t), color.rgb_to_lab(colours), atol=tol)
    rgb_t = color.lab_to_rgb_t(lab_t)
    np.testing.assert_allclose(_from_image_tensor(rgb_t), colours, atol=1e-4 if dtype == torch.float64 else 1e-3)


def test_torch_batched():
    rgb = torch.rand(3, 3, 4, 5, dtype=torch.float64)
    lab = color.rgb_to_lab_t(rgb)
    for i in range(3):
        torch.testing.assert_close(color.rgb_to_lab_t(rgb[i : i + 1]), lab[i : i + 1])
    expected = color.rgb_to_lab(rgb.permute(0, 2, 3, 1).numpy())  # (B, H, W, 3)
    np.testing.assert_allclose(lab.permute(0, 2, 3, 1).numpy(), expected, atol=1e-9)
    with pytest.raises(ValueError):
        color.rgb_to_lab_t(torch.rand(1, 4, 2, 2))


def test_torch_gradients_finite_at_black_and_thresholds():
    rgb = torch.zeros(1, 3, 2, 2, requires_grad=True)
    with torch.no_grad():
        rgb[0, :, 0, 1] = color.SRGB_DECODE_THRESHOLD
        rgb[0, :, 1, 0] = 1.0
    rgb.retain_grad()
    color.rgb_to_lab_t(rgb).sum().backward()
    assert torch.isfinite(rgb.grad).all()

    lab = torch.zeros(1, 3, 2, 2, requires_grad=True)
    color.lab_to_rgb_t(lab).sum().backward()
    assert torch.isfinite(lab.grad).all()
    lab2 = torch.zeros(1, 3, 2, 2, requires_grad=True)
    color.lab_to_rgb_t(lab2, clamp=False).square().sum().backward()
    assert torch.isfinite(lab2.grad).all()


def test_torch_gradcheck():
    rgb = (torch.rand(1, 3, 2, 3, dtype=torch.float64) * 0.8 + 0.1).requires_grad_()
    assert torch.autograd.gradcheck(color.rgb_to_lab_t, (rgb,))
    lab = color.rgb_to_lab_t(rgb.detach()).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: color.lab_to_rgb_t(x, clamp=False), (lab,))


def test_torch_float16_computed_in_float32():
    rgb = torch.rand(2, 3, 8, 8)
    lab16 = color.rgb_to_lab_t(rgb.half())
    assert lab16.dtype == torch.float16
    torch.testing.assert_close(lab16.float(), color.rgb_to_lab_t(rgb.half().float()), atol=0.1, rtol=0)
    rgb16 = color.lab_to_rgb_t(lab16)
    assert rgb16.dtype == torch.float16
    torch.testing.assert_close(rgb16.float(), rgb, atol=5e-3, rtol=0)


def test_torch_lab_to_rgb_clamps():
    lab = torch.tensor([50.0, 120.0, -120.0, 100.0, 100.0, 100.0]).reshape(2, 3, 1, 1)  # (B=2, 3, 1, 1)
    rgb = color.lab_to_rgb_t(lab)
    assert rgb.min() >= 0.0 and rgb.max() <= 1.0


def test_torch_grey_helpers():
    l = torch.tensor([0.0, 25.0, 50.0, 100.0]).reshape(1, 1, 2, 2)  # (B=1, 1, 2, 2)
    lab = color.gray_lab_t(l)
    assert lab.shape == (1, 3, 2, 2) and (lab[:, 1:] == 0).all()
    grey = color.l_to_gray_rgb_t(l)
    assert grey.shape == (1, 3, 2, 2)
    torch.testing.assert_close(grey[:, 0], grey[:, 1], atol=1e-4, rtol=0)
    torch.testing.assert_close(color.rgb_to_lab_t(grey)[:, :1], l, atol=1e-2, rtol=0)
    ab = torch.ones(1, 2, 2, 2)
    assert color.lab_from_l_ab_t(l, ab).shape == (1, 3, 2, 2)
