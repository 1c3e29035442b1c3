"""DeOldify family: published layouts of the full generators, odd-size inference, ICNR, weight norm and the critic."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from colorizers.models.deoldify import (
    PAD_MULTIPLE,
    Y_RANGE,
    Blur2x2,
    DeOldify,
    DeOldifyCritic,
    SelfAttention,
    WeightNormConv2d,
    icnr_,
)
from colorizers.registry import create_model, get_spec

LAYOUTS = Path(__file__).resolve().parents[1] / "fixtures" / "published_layouts"
FAMILY = ("deoldify-artistic", "deoldify-stable")
PUBLISHED = {
    "deoldify-artistic": ("deoldify_artistic_state_dict.txt", 63_646_881, "ColorizeArtistic_gen.pth"),
    "deoldify-stable": ("deoldify_stable_state_dict.txt", 218_222_197, "ColorizeStable_gen.pth"),
}


def _published_layout(filename: str) -> list[tuple[str, tuple[int, ...]]]:
    """Lines like ``layers.0.0.weight (64, 3, 7, 7)`` -> [(key, shape), ...] in file order."""
    layout = []
    for line in (LAYOUTS / filename).read_text().splitlines():
        if not line.strip():
            continue
        key, shape = line.split(" ", 1)
        layout.append((key, tuple(int(d) for d in shape.strip("() ").split(",") if d.strip())))
    return layout


@pytest.fixture(scope="module", params=FAMILY)
def full_model(request: pytest.FixtureRequest) -> tuple[str, DeOldify]:
    """Each full generator, built once per module on the meta device (shapes without ~1 GB of memory)."""
    with torch.device("meta"):
        model = create_model(request.param, "full")
    return request.param, model


@pytest.fixture(scope="module", params=FAMILY)
def tiny_model(request: pytest.FixtureRequest) -> DeOldify:
    torch.manual_seed(0)
    return create_model(request.param, "tiny").eval()


def test_full_state_dict_equals_published_layout(full_model: tuple[str, DeOldify]) -> None:
    model_id, model = full_model
    expected = _published_layout(PUBLISHED[model_id][0])
    got = [(key, tuple(t.shape)) for key, t in model.state_dict().items()]
    assert sorted(set(expected) - set(got)) == []
    assert sorted(set(got) - set(expected)) == []
    assert got == expected  # same order too


def test_full_parameter_count_matches_published(full_model: tuple[str, DeOldify]) -> None:
    model_id, model = full_model
    assert sum(p.numel() for p in model.parameters()) == PUBLISHED[model_id][1]
    assert get_spec(model_id).published_checkpoint == PUBLISHED[model_id][2]


def test_full_generators_have_one_self_attention_at_one_eighth(full_model: tuple[str, DeOldify]) -> None:
    _, model = full_model
    attention = [name for name, m in model.named_modules() if isinstance(m, SelfAttention)]
    assert attention == [
        "layers.5.conv2.3" if model.model_args["decoder"] == "deep" else "layers.5.conv.3",
    ]


@pytest.mark.parametrize("model_id", FAMILY)
def test_variant_sizes(model_id: str) -> None:
    tiny = create_model(model_id, "tiny")
    compact = create_model(model_id, "compact")
    assert 10_000 <= sum(p.numel() for p in tiny.parameters()) <= 100_000
    trainable = sum(p.numel() for p in compact.parameters() if p.requires_grad)  # the encoder is frozen
    assert 1_000_000 <= trainable <= 4_000_000
    assert get_spec(model_id).working_size == 256


@pytest.mark.parametrize("size", [(64, 48), (64, 64), (33, 31)])
def test_forward_keeps_size_and_stays_in_y_range(tiny_model: DeOldify, size: tuple[int, int]) -> None:
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        y = tiny_model(x)
    assert y.shape == (2, 3, *size)
    assert Y_RANGE[0] <= y.min().item() and y.max().item() <= Y_RANGE[1]


@pytest.mark.parametrize("size", [(64, 48), (32, 96), (45, 61), (9, 7)])
def test_predict_ab_any_size(tiny_model: DeOldify, size: tuple[int, int]) -> None:
    l = torch.rand(2, 1, *size) * 100
    with torch.no_grad():
        ab = tiny_model.predict_ab(l)
    assert ab.shape == (2, 2, *size)
    assert ab.dtype == torch.float32
    assert torch.isfinite(ab).all()
    assert ab.abs().max().item() < 128


def test_predict_ab_pads_to_the_encoder_stride(tiny_model: DeOldify) -> None:
    """A non-multiple of 32 is replicate-padded: its result is the crop of running the padded grey image."""
    l = torch.rand(1, 1, 40, 50) * 100
    padded = F.pad(l, (0, 2 * PAD_MULTIPLE - 50, 0, 2 * PAD_MULTIPLE - 40), mode="replicate")  # (1, 1, 64, 64)
    with torch.no_grad():
        small = tiny_model.predict_ab(l)
        big = tiny_model.predict_ab(padded)
    torch.testing.assert_close(small, big[..., :40, :50], atol=1e-4, rtol=1e-4)


def test_tiny_trains_one_step() -> None:
    torch.manual_seed(0)
    model = create_model("deoldify-artistic", "tiny").train()
    x, target = torch.randn(2, 3, 64, 48), torch.randn(2, 3, 64, 48)
    F.l1_loss(model(x), target).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("model_id", FAMILY)
def test_untrained_spectral_norms_start_near_sigma(model_id: str) -> None:
    """Fresh u, v estimate each weight's largest singular value, so an untrained eval-mode model stays finite."""
    torch.manual_seed(0)
    model = create_model(model_id, "tiny")
    modules = [m for m in model.modules() if hasattr(m, "weight_orig")]
    assert modules
    for m in modules:
        mat = m.weight_orig.detach().flatten(1)
        estimate = torch.dot(m.weight_u, mat @ m.weight_v)
        assert 0.5 <= (estimate / torch.linalg.matrix_norm(mat, ord=2)).item() <= 1.0 + 1e-4


def test_icnr_makes_pixel_shuffle_start_as_nearest_upsampling() -> None:
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(6, 4 * 5, 1, bias=False)
    icnr_(conv.weight)
    x = torch.randn(1, 6, 5, 7)
    up = F.pixel_shuffle(conv(x), 2)  # (1, 5, 10, 14)
    torch.testing.assert_close(up, F.interpolate(up[..., ::2, ::2], scale_factor=2, mode="nearest"))


def test_blur_is_the_two_by_two_average() -> None:
    x = torch.randn(2, 7, 9, 6, requires_grad=True)
    blurred = Blur2x2()(x)
    torch.testing.assert_close(blurred, F.avg_pool2d(x, 2, stride=1))
    blurred.sum().backward()  # trainable through, like the pooling it replaces
    assert x.grad is not None and x.grad.shape == x.shape


def test_weight_norm_conv_matches_its_definition() -> None:
    torch.manual_seed(0)
    conv = WeightNormConv2d(5, 8, 1, icnr=True)
    assert [name for name, _ in conv.named_parameters()] == ["bias", "weight_g", "weight_v"]
    torch.testing.assert_close(conv.weight, conv.weight_v)  # g starts at ||v||
    with torch.no_grad():
        conv.weight_g.mul_(3.0)
    x = torch.randn(2, 5, 4, 4)
    torch.testing.assert_close(conv(x), F.conv2d(x, 3.0 * conv.weight_v, conv.bias), atol=1e-5, rtol=1e-5)


def test_critic_scores_patches() -> None:
    torch.manual_seed(0)
    critic = DeOldifyCritic(nf=8, n_blocks=3).eval()
    with torch.no_grad():
        scores = critic(torch.randn(2, 3, 96, 64))
    assert scores.shape == (2, 3)  # 96 x 64 halved 4 times -> 6 x 4; a valid 4 x 4 conv -> 3 x 1 patches
    assert torch.isfinite(scores).all()
    with pytest.raises(ValueError, match="at least 64"):
        critic(torch.randn(1, 3, 48, 64))
