"""Family-specific behaviour of the Wallner, BigColor and coloria models (generic checks live in the registry tests)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from colorizers.color import rgb_to_lab_t
from colorizers.models.bigcolor import DEFAULT_SEED, BigColorDiscriminator
from colorizers.registry import create_model
from tests.helpers import cpu_step_context
from training.recipes import get_recipe
from training.recipes.base import Recipe, StepContext

FAMILY_IDS = ("wallner-alpha", "wallner-beta", "wallner-full", "bigcolor", "coloria-cnn")


def _lightness(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) * 100


class MeanColourEmbedding(nn.Module):
    """A stand-in for an operator's pretrained classifier: RGB (B, 3, S, S) -> (B, dim); records input shapes."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(3, dim)
        self.seen: list[tuple[int, ...]] = []

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        self.seen.append(tuple(rgb.shape))
        return self.proj(rgb.mean(dim=(2, 3)))  # (B, 3, S, S) -> (B, 3) -> (B, dim)


# ------------------------------------------------------------------------------------------------ odd sizes


@pytest.mark.parametrize("model_id", FAMILY_IDS)
@pytest.mark.parametrize("size", [(37, 53), (7, 5)])
def test_any_size_gives_same_size_ab(model_id: str, size: tuple[int, int]) -> None:
    model = create_model(model_id, "tiny").eval()
    with torch.no_grad():
        ab = model.predict_ab(_lightness(2, 1, *size))
    assert ab.shape == (2, 2, *size)
    assert torch.isfinite(ab).all()


@pytest.mark.parametrize(
    ("model_id", "channels", "low", "high"),
    [("wallner-beta", 2, -1.0, 1.0), ("bigcolor", 3, -1.0, 1.0), ("coloria-cnn", 3, 0.0, 1.0)],
)
def test_native_output_space(model_id: str, channels: int, low: float, high: float) -> None:
    model = create_model(model_id, "tiny").eval()
    with torch.no_grad():
        out = model(_lightness(1, 1, 33, 40))
    assert out.shape == (1, channels, 33, 40)
    assert low <= out.min() and out.max() <= high


# ------------------------------------------------------------------------------------------------ wallner-full


def test_wallner_full_accepts_a_custom_embedding_network() -> None:
    torch.manual_seed(0)
    custom = MeanColourEmbedding(10)
    model = create_model("wallner-full", "tiny", width=8, embedding=custom, embed_dim=10, embed_size=24).eval()
    l = _lightness(2, 1, 40, 48)
    with torch.no_grad():
        before = model.predict_ab(l)
        assert custom.seen[-1] == (2, 3, 24, 24)  # grey image as RGB, resized to embed_size
        custom.proj.bias.add_(5.0)  # a different embedding must change the colours
        after = model.predict_ab(l)
    assert model.embedding is custom
    assert not torch.allclose(before, after)


def test_wallner_full_precomputed_embedding_matches_and_dim_is_checked() -> None:
    model = create_model("wallner-full", "tiny").eval()
    l = _lightness(1, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(l), model(l, embedding=model.embed(l)))
    wrong = create_model("wallner-full", "tiny", embedding=MeanColourEmbedding(3), embed_dim=16)
    with pytest.raises(ValueError, match="embed_dim"):
        wrong(l)


def test_wallner_full_frozen_embedding_stays_fixed_in_training() -> None:
    custom = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    model = create_model("wallner-full", "tiny", embedding=custom, embed_dim=4, freeze_embedding=True)
    model.train()
    assert not custom.training and model.encoder.training
    model(_lightness(2, 1, 16, 16)).square().mean().backward()
    assert all(p.grad is None for p in custom.parameters())
    assert all(p.grad is not None for p in model.encoder.parameters())


# ------------------------------------------------------------------------------------------------ bigcolor


def test_bigcolor_seed_is_repeatable_and_changes_colours() -> None:
    model = create_model("bigcolor", "tiny").eval()
    l = _lightness(2, 1, 32, 32)
    with torch.no_grad():
        first = model.predict_ab(l, seed=7)
        again = model.predict_ab(l, seed=7)
        other = model.predict_ab(l, seed=8)
        default = model.predict_ab(l)
        default_again = model.predict_ab(l, seed=None)
        explicit_default = model.predict_ab(l, seed=DEFAULT_SEED)
    assert torch.equal(first, again)
    assert (first - other).abs().mean() > 1e-3
    assert torch.equal(default, default_again) and torch.equal(default, explicit_default)


def test_bigcolor_noise_follows_the_paper() -> None:
    model = create_model("bigcolor", "tiny")
    z = model.sample_z(4096, seed=3)
    assert z.shape == (4096, 119)
    assert torch.equal(z, model.sample_z(4096, seed=3))
    assert abs(z.std().item() - 0.8) < 0.01


def test_bigcolor_projection_discriminator() -> None:
    generator = create_model("bigcolor", "tiny")
    l = _lightness(2, 1, 32, 32)
    _, embedding = generator.encode(l)
    critic = BigColorDiscriminator((8, 16, 16, 16), cond_dim=embedding.shape[1])
    scores = critic(generator(l), embedding.detach())
    assert scores.shape == (2,)
    assert any(name.endswith("weight_orig") for name, _ in critic.named_parameters())  # spectral norm
    with pytest.raises(ValueError, match="cond"):
        critic(generator(l))
    assert BigColorDiscriminator((8, 16, 16, 16))(generator(l)).shape == (2,)


# ------------------------------------------------------------------------------------------------ coloria-cnn


def test_coloria_full_layout() -> None:
    model = create_model("coloria-cnn", "full")
    downs = [model.down1, model.down2, model.down3, model.down4, model.down5]
    assert [d[0].out_channels for d in downs] == [128, 128, 256, 512, 512]
    assert [d[0].stride for d in downs] == [(2, 2)] * 5
    assert [any(isinstance(m, nn.BatchNorm2d) for m in d) for d in downs] == [False, False, True, True, True]
    assert all(isinstance(d[-1], nn.LeakyReLU) for d in downs)
    ups = [model.up1, model.up2, model.up3, model.up4, model.up5]
    assert all(isinstance(u[0], nn.ConvTranspose2d) and u[0].stride == (2, 2) for u in ups)
    assert [u[0].out_channels for u in ups] == [512, 256, 128, 128, 3]
    assert [u[0].in_channels for u in ups] == [512, 1024, 512, 256, 256]  # skip concatenation doubles the width
    assert model.out.kernel_size == (2, 2) and model.out.out_channels == 3
    assert sum(p.numel() for p in model.parameters()) == 9_597_878


def _bigcolor_step_context(phase: str) -> tuple[Recipe, StepContext, dict[str, torch.Tensor]]:
    recipe = get_recipe("bigcolor")
    torch.manual_seed(0)
    nets = recipe.build("tiny")
    ctx = cpu_step_context(nets, recipe.optimizers(nets, recipe.lr))
    ctx.phase = next(p for p in recipe.phases if p.name == phase)
    rgb = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    lab = rgb_to_lab_t(rgb)
    batch = {"rgb": rgb, "l": lab[:, :1], "ab": lab[:, 1:]}
    return recipe, ctx, batch


@pytest.mark.parametrize(("phase", "critic_learns"), [("reconstruction", False), ("gan", True)])
def test_bigcolor_discriminator_joins_only_in_the_gan_phase(phase: str, critic_learns: bool) -> None:
    recipe, ctx, batch = _bigcolor_step_context(phase)
    critic_before = [p.detach().clone() for p in ctx.raw["critic"].parameters()]
    generator_before = [p.detach().clone() for p in ctx.raw["model"].parameters() if p.requires_grad]
    losses = recipe.step(ctx, batch)
    critic_after = list(ctx.raw["critic"].parameters())
    critic_changed = any(not torch.equal(a, b) for a, b in zip(critic_before, critic_after, strict=True))
    trained = [p for p in ctx.raw["model"].parameters() if p.requires_grad]
    assert any(not torch.equal(a, b) for a, b in zip(generator_before, trained, strict=True))
    assert critic_changed is critic_learns
    assert ("d_hinge" in losses) is critic_learns and torch.isfinite(losses["g_rec"])

