"""zhang-eccv16 as an ensemble: the mixture of its classifiers, and joining separately trained weights into one."""

from __future__ import annotations

import json

import pytest
import torch

from colorizers import create_model, weights
from colorizers.models.pretrained import load_encoder_weights
from training import ensemble


def _trained(seed: int, directory, *, width: int = 32, steps: int = 10):
    torch.manual_seed(seed)
    model = create_model("zhang-eccv16", "compact", width=width)
    load_encoder_weights(model)
    model.log_rebalancing.copy_(torch.randn(313))
    meta = {"recipe": "zhang-eccv16: test", "steps": steps, "train_seconds": 1.5, "training": {"seed": seed}}
    weights.save(model.eval(), directory, half=False, **meta)
    return model


def test_an_ensemble_predicts_the_mean_of_its_members_distributions():
    torch.manual_seed(0)
    model = create_model("zhang-eccv16", "compact", width=32, members=3).eval()
    l = torch.rand(1, 1, 64, 96) * 100
    with torch.no_grad():
        for classifier in model.classifiers:  # an untrained classifier's distribution is close to uniform
            classifier.head[-1].weight.mul_(20)
        features = model.encoder(l)
        members = torch.stack([torch.softmax(c(features), dim=1) for c in model.classifiers])  # (3, 1, 313, h, w)
        mixture = torch.softmax(model(l), dim=1)
    torch.testing.assert_close(mixture, members.mean(dim=0), atol=1e-6, rtol=1e-4)
    assert (members[0].log() - members[1].log()).abs().max() > 0.05  # the members differ


def test_join_makes_one_model_of_separate_trainings(tmp_path):
    first = _trained(0, tmp_path / "a")
    second = _trained(1, tmp_path / "b", steps=20)
    ensemble.join([tmp_path / "a", tmp_path / "b"], tmp_path / "out")
    joined, meta = weights.load("zhang-eccv16", tmp_path / "out")
    assert len(joined.classifiers) == 2 and joined.model_args["members"] == 2
    for member, source in zip(joined.classifiers, (first, second), strict=True):
        for key, value in source.classifiers[0].state_dict().items():
            torch.testing.assert_close(member.state_dict()[key].float(), value.float(), atol=2e-3, rtol=1e-3)
    mean_prior = 0.5 * (first.log_rebalancing + second.log_rebalancing)
    torch.testing.assert_close(joined.log_rebalancing.float(), mean_prior, atol=2e-3, rtol=1e-3)
    assert meta["steps"] == 30 and [m["seed"] for m in meta["members"]] == [0, 1]
    assert json.loads((tmp_path / "out" / "zhang-eccv16.json").read_text())["bytes"] > 0

    ensemble.join([tmp_path / "out", tmp_path / "a"], tmp_path / "three")  # an ensemble brings all its members
    three, meta = weights.load("zhang-eccv16", tmp_path / "three")
    assert len(three.classifiers) == 3 and meta["recipe"] == "mixture of 3 trainings of zhang-eccv16: test"


def test_join_refuses_members_that_do_not_fit(tmp_path):
    _trained(0, tmp_path / "a")
    _trained(1, tmp_path / "wide", width=48)
    with pytest.raises(ensemble.EnsembleError, match="at least two"):
        ensemble.join([tmp_path / "a"], tmp_path / "out")
    with pytest.raises(ensemble.EnsembleError, match="width"):
        ensemble.join([tmp_path / "a", tmp_path / "wide"], tmp_path / "out")
