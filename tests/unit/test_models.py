"""Contract tests for every registered model (tiny variants): a new family needs no new test lines."""

from __future__ import annotations

import pytest
import torch

from colorizers import create_model, list_models

SPECS = list_models()
IDS = [s.id for s in SPECS]


def test_catalogue_is_complete():
    assert set(IDS) >= {
        "wallner-alpha", "wallner-beta", "wallner-full", "zhang-eccv16", "zhang-siggraph17",
        "deoldify-artistic", "deoldify-stable", "bigcolor", "coloria-cnn",
    }
    assert not next(s for s in SPECS if s.id == "wallner-alpha").served


def _lightness(batch: int, size: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 1, size, size, generator=g) * 100.0  # (B, 1, H, W)


@pytest.fixture(scope="module")
def tiny_models():
    torch.manual_seed(0)
    return {s.id: create_model(s.id, "tiny").eval() for s in SPECS}


@pytest.mark.parametrize("model_id", IDS)
def test_shape_and_range(tiny_models, model_id):
    model = tiny_models[model_id]
    with torch.inference_mode():
        for size in (64, 72):
            ab = model.predict_ab(_lightness(2, size))
            assert ab.shape == (2, 2, size, size)
            assert torch.isfinite(ab).all()
            assert ab.abs().max() <= 128.0 + 1e-3


@pytest.mark.parametrize("model_id", IDS)
def test_eval_mode_is_deterministic(tiny_models, model_id):
    model = tiny_models[model_id]
    l = _lightness(1, 64)
    with torch.inference_mode():
        assert torch.equal(model.predict_ab(l), model.predict_ab(l))


@pytest.mark.parametrize("model_id", IDS)
def test_batch_elements_are_independent(tiny_models, model_id):
    model = tiny_models[model_id]
    l = _lightness(3, 64, seed=1)
    with torch.inference_mode():
        together = model.predict_ab(l)
        alone = model.predict_ab(l[1:2])
    torch.testing.assert_close(together[1:2], alone, atol=1e-3, rtol=1e-3)


@pytest.mark.parametrize("model_id", IDS)
def test_model_args_rebuild_the_same_layout(tiny_models, model_id):
    model = tiny_models[model_id]
    rebuilt = create_model(model_id, None, **model.model_args)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {
        k: v.shape for k, v in model.state_dict().items()
    }


@pytest.mark.parametrize("model_id", IDS)
def test_native_forward_is_differentiable(model_id):
    """Training needs gradients through predict_ab for every family."""
    model = create_model(model_id, "tiny").train()
    ab = model.predict_ab(_lightness(2, 64))
    ab.square().mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
