"""Zhang et al. family: published layouts, the 313-bin ab gamut and its maths, and siggraph17 hints."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from colorizers import ab_gamut, create_model
from colorizers.color import rgb_to_lab
from tests.helpers import cpu_step_context

LAYOUT_FILE = Path(__file__).resolve().parents[1] / "fixtures/published_layouts/zhang_eccv16_siggraph17_state_dict.txt"
MODEL_IDS = {"eccv16": "zhang-eccv16", "siggraph17": "zhang-siggraph17"}


def _published_layouts() -> dict[str, tuple[int, int, dict[str, tuple[int, ...]]]]:
    """{"eccv16": (parameter count, header entry count, {key: shape}), "siggraph17": ...} from the fixture."""
    layouts: dict[str, tuple[int, int, dict[str, tuple[int, ...]]]] = {}
    name = None
    for line in LAYOUT_FILE.read_text().splitlines():
        header = re.match(r"=+ (\w+) params (\d+) state_dict entries (\d+)", line)
        if header:
            name = header.group(1)
            layouts[name] = (int(header.group(2)), int(header.group(3)), {})
            continue
        entry = re.match(r"(\S+) \(([\d, ]*)\)$", line)
        if entry and name:
            layouts[name][2][entry.group(1)] = tuple(int(v) for v in entry.group(2).split(",") if v.strip())
    return layouts


LAYOUTS = _published_layouts()


def _lightness(batch: int, size: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 1, size, size, generator=g) * 100.0  # (B, 1, H, W)


# --------------------------------------------------------------------------------------------------------------
# Published layouts
# --------------------------------------------------------------------------------------------------------------


def test_fixture_lists_both_checkpoints():
    """The listed keys omit BatchNorm's scalar ``num_batches_tracked`` counters; the header's count includes them."""
    assert set(LAYOUTS) == set(MODEL_IDS)
    for _, entries, layout in LAYOUTS.values():
        norms = sum(key.endswith(".running_mean") for key in layout)
        assert len(layout) + norms == entries
    assert len(LAYOUTS["eccv16"][2]) == 75 and len(LAYOUTS["siggraph17"][2]) == 98


@pytest.mark.parametrize("name", sorted(MODEL_IDS))
def test_full_variant_matches_published_layout(name):
    count, _, layout = LAYOUTS[name]
    with torch.device("meta"):
        model = create_model(MODEL_IDS[name], "full")
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == layout
    assert sum(p.numel() for p in model.parameters()) == count
    out = model(torch.empty(1, 1, 256, 256, device="meta"))
    assert tuple(out.shape) == ((1, 313, 64, 64) if name == "eccv16" else (1, 2, 256, 256))


@pytest.mark.parametrize("model_id", sorted(MODEL_IDS.values()))
def test_state_dict_round_trips_without_metadata(model_id):
    """A plain dict (as read from safetensors) loads strictly: no num_batches_tracked is expected or added."""
    torch.manual_seed(0)
    source, target = create_model(model_id, "tiny"), create_model(model_id, "tiny")
    state = {k: v.clone() for k, v in source.state_dict().items()}  # no _metadata attribute
    assert not any(k.endswith("num_batches_tracked") for k in state)
    target.load_state_dict(state, strict=True)
    l = _lightness(1, 32)
    with torch.inference_mode():
        torch.testing.assert_close(source.eval().predict_ab(l), target.eval().predict_ab(l))
    # Checkpoints saved from stock BatchNorm2d carry the counters; they load strictly too.
    counters = {
        f"{name}.num_batches_tracked": torch.tensor(7)
        for name, m in source.named_modules()
        if isinstance(m, torch.nn.BatchNorm2d)
    }
    assert counters
    target.load_state_dict({**state, **counters}, strict=True)


@pytest.mark.parametrize("model_id", sorted(MODEL_IDS.values()))
def test_tiny_and_compact_sizes(model_id):
    tiny = sum(p.numel() for p in create_model(model_id, "tiny").parameters())
    with torch.device("meta"):
        compact = sum(p.numel() for p in create_model(model_id, "compact").parameters() if p.requires_grad)
    assert 1_000 <= tiny <= 50_000
    assert 300_000 <= compact <= 2_000_000  # the head; its pretrained encoder is frozen


# --------------------------------------------------------------------------------------------------------------
# ab gamut
# --------------------------------------------------------------------------------------------------------------


def test_bins_are_the_published_313_in_their_order():
    centres = ab_gamut.bin_centres_numpy()
    assert ab_gamut.NUM_BINS == 313 == len(centres)
    assert ab_gamut.FULL_GRID_BINS == 529
    assert np.all(np.abs(centres) <= 110) and np.all(centres % 10 == 0)
    assert len(np.unique(centres, axis=0)) == 313
    # pts_in_hull.npy's order: a ascending, then b ascending.
    assert [tuple(c) for c in centres] == sorted(tuple(c) for c in centres)
    assert tuple(centres[0]) == (-90, 50) and tuple(centres[-1]) == (100, 0)
    published = {tuple(int(v) for v in c) for c in centres}
    assert {(40, 90), (100, -90), (100, 0)} <= published
    assert not {(-60, 100), (80, 80), (110, -60)} & published
    torch.testing.assert_close(ab_gamut.bin_centres(), torch.tensor(centres, dtype=torch.float32))


def test_bins_cover_every_srgb_colour():
    rng = np.random.default_rng(0)
    rgb = np.concatenate([rng.random((4000, 3)), np.eye(3), 1 - np.eye(3)])  # random colours plus R G B C M Y
    ab = torch.tensor(rgb_to_lab(rgb)[:, 1:], dtype=torch.float32)
    nearest = torch.cdist(ab, ab_gamut.bin_centres()).min(dim=1).values
    assert nearest.max() <= 5 * math.sqrt(2) + 1e-4  # within its own grid cell


def test_soft_encoding_uses_five_gaussian_neighbours():
    ab = torch.randn(2, 2, 4, 5) * 40  # (B, 2, H, W)
    encoded = ab_gamut.soft_encode(ab)
    assert encoded.shape == (2, ab_gamut.NUM_BINS, 4, 5)
    torch.testing.assert_close(encoded.sum(dim=1), torch.ones(2, 4, 5))
    assert ((encoded > 0).sum(dim=1) == 5).all()
    assert torch.equal(encoded.argmax(dim=1), ab_gamut.nearest_bins(ab))
    # On a bin centre whose four grid neighbours are in gamut: 1 : e^-2 for each neighbour at distance 10.
    centre = torch.tensor([0.0, 0.0]).view(1, 2, 1, 1)
    weights = ab_gamut.soft_encode(centre).flatten()
    top = weights.topk(5).values
    torch.testing.assert_close(top / top[0], torch.tensor([1.0] + [math.exp(-2.0)] * 4))


def test_rebalancing_weights_have_unit_expectation_and_favour_rare_colours():
    g = torch.Generator().manual_seed(0)
    ab = torch.randn(4, 2, 16, 16, generator=g) * 15  # greyish colours: a peaked prior
    prior = ab_gamut.empirical_prior(ab)
    torch.testing.assert_close(prior.sum(), torch.tensor(1.0))
    smoothed = ab_gamut.smooth_prior(prior)
    torch.testing.assert_close(smoothed.sum(), torch.tensor(1.0))
    weights = ab_gamut.rebalancing_weights(prior)
    torch.testing.assert_close((smoothed * weights).sum(), torch.tensor(1.0))
    grey, rare = ab_gamut.nearest_bins(torch.tensor([[[[0.0]], [[0.0]]], [[[60.0]], [[60.0]]]])).flatten()
    assert weights[rare] > weights[grey]
    # lambda = 1 mixes in only the uniform distribution: no rebalancing.
    torch.testing.assert_close(ab_gamut.rebalancing_weights(prior, lam=1.0), torch.ones(ab_gamut.NUM_BINS))


def test_rebalanced_cross_entropy():
    logits = torch.randn(2, ab_gamut.NUM_BINS, 3, 3)
    target = ab_gamut.soft_encode(torch.randn(2, 2, 3, 3) * 30)
    plain = ab_gamut.rebalanced_cross_entropy(logits, target)
    expected = -(target * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()
    torch.testing.assert_close(plain, expected)
    ones = torch.ones(ab_gamut.NUM_BINS)
    torch.testing.assert_close(ab_gamut.rebalanced_cross_entropy(logits, target, ones), plain)
    torch.testing.assert_close(ab_gamut.rebalanced_cross_entropy(logits, target, 2 * ones), 2 * plain)


def test_annealed_mean():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, ab_gamut.NUM_BINS, 4, 4, generator=g) * 2  # (B, Q, H, W)
    centres = ab_gamut.bin_centres()
    expectation = torch.einsum("bqhw,qc->bchw", torch.softmax(logits, dim=1), centres)  # (B, 2, H, W)
    decoded = ab_gamut.annealed_mean(logits, centres, temperature=1.0)
    torch.testing.assert_close(decoded, expectation, rtol=1e-5, atol=1e-4)  # float32 sums in another order
    chroma = {t: ab_gamut.annealed_mean(logits, temperature=t).norm(dim=1).mean() for t in (1.0, 0.38, 0.1)}
    assert chroma[0.1] > chroma[0.38] > chroma[1.0]
    # T -> 0 tends to the mode.
    mode = centres[logits.argmax(dim=1)].permute(0, 3, 1, 2)  # (B, 2, H, W)
    torch.testing.assert_close(ab_gamut.annealed_mean(logits, temperature=1e-4), mode, rtol=0, atol=1e-2)


# --------------------------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------------------------


def test_eccv16_logits_and_annealed_prediction():
    torch.manual_seed(0)
    model = create_model("zhang-eccv16", "tiny").eval()
    assert model.temperature == pytest.approx(0.38)
    l = _lightness(2, 64)
    with torch.inference_mode():
        logits = model(l)
        assert logits.shape == (2, 313, 16, 16)  # 1/4 resolution
        torch.testing.assert_close(model.bin_centres(), ab_gamut.bin_centres(), rtol=0, atol=1e-4)
        ab = model.predict_ab(l)
        assert ab.shape == (2, 2, 64, 64)
        small = ab_gamut.annealed_mean(logits, temperature=0.38)
        expected = torch.nn.functional.interpolate(small, size=(64, 64), mode="bilinear", align_corners=False)
        torch.testing.assert_close(ab, expected, rtol=0, atol=1e-3)
        warm = create_model("zhang-eccv16", "tiny", temperature=1.0)
        warm.load_state_dict(model.state_dict())
        assert warm.eval().predict_ab(l).norm(dim=1).mean() < ab.norm(dim=1).mean()


def test_eccv16_bin_map_is_not_trained():
    model = create_model("zhang-eccv16", "tiny")
    assert not model.model_out.weight.requires_grad


def test_siggraph17_hints_change_the_output_near_the_hint():
    torch.manual_seed(0)
    model = create_model("zhang-siggraph17", "tiny").eval()
    l = _lightness(1, 64)
    hint_ab = torch.zeros(1, 2, 64, 64)
    hint_mask = torch.zeros(1, 1, 64, 64)
    with torch.inference_mode():
        automatic = model.predict_ab(l)
        torch.testing.assert_close(model.predict_ab(l, hint_ab=hint_ab, hint_mask=hint_mask), automatic)
        # ab without a mask is ignored.
        torch.testing.assert_close(
            model.predict_ab(l, hint_ab=torch.full_like(hint_ab, 50.0), hint_mask=hint_mask), automatic
        )
        hint_ab[:, :, 30:33, 30:33] = torch.tensor([60.0, -40.0]).view(1, 2, 1, 1)
        hint_mask[:, :, 30:33, 30:33] = 1.0
        guided = model.predict_ab(l, hint_ab=hint_ab, hint_mask=hint_mask)
    change = (guided - automatic).abs().sum(dim=1)[0]  # (H, W)
    assert change[28:35, 28:35].mean() > 1e-3
    assert change[28:35, 28:35].mean() > change[:8, :8].mean()


def test_siggraph17_classes_and_odd_sizes():
    torch.manual_seed(0)
    model = create_model("zhang-siggraph17", "tiny").eval()
    with torch.inference_mode():
        ab, classes = model.forward_with_classes(_lightness(2, 64))
        assert ab.shape == (2, 2, 64, 64) and classes.shape == (2, 529, 16, 16)
        assert ab.abs().max() <= 110.0
        assert model.predict_ab(_lightness(1, 37)).shape == (1, 2, 37, 37)


def test_compact_eccv16_keeps_its_rebalancing_and_decoding_undoes_a_share_of_it():
    from training.recipes import get_recipe

    recipe = get_recipe("zhang-eccv16")
    torch.manual_seed(0)
    nets = recipe.build("compact")
    ctx = cpu_step_context(nets)
    g = torch.Generator().manual_seed(1)
    recipe.prepare(ctx, [{"ab": torch.randn(2, 2, 32, 32, generator=g) * 15}])
    model = nets["model"].eval()
    torch.testing.assert_close(model.log_rebalancing, ctx.state["rebalance_weights"].log())
    assert "log_rebalancing" in model.state_dict()  # saved with the weights, so serving decodes with it

    l = torch.rand(1, 1, 64, 64) * 100
    with torch.inference_mode():
        paper = model.predict_ab(l)
        model.prior_strength = 1.0
        undone = model.predict_ab(l)
        model.log_rebalancing.zero_()
        torch.testing.assert_close(model.predict_ab(l), paper)  # without weights the strength does nothing
    # Dividing by the weights of rare (saturated) colours pulls the decoded colours towards the common, grey ones.
    assert undone.norm(dim=1).mean() < paper.norm(dim=1).mean()
