"""The one inference path: same-size output, original luminance kept, hints, seeds, batching."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from colorizers import create_model, imaging, list_models
from colorizers.pipeline import Colorizer, RequestError, WorkItem, hints_to_tensors, parse_hints, select_device
from tests.helpers import make_photo, to_bytes

SERVED = [s.id for s in list_models(served_only=True)]


def tiny(model_id: str) -> Colorizer:
    torch.manual_seed(0)
    return Colorizer(create_model(model_id, "tiny"), device="cpu")


@pytest.mark.parametrize("model_id", SERVED)
def test_output_has_the_input_size_and_its_luminance(model_id):
    photo = make_photo(123, 77)
    result = tiny(model_id).colorize(photo)
    assert result.size == photo.size and result.mode == "RGB"
    l_in, l_out = imaging.lightness(photo), imaging.lightness(result)
    assert np.median(np.abs(l_in - l_out)) < 1.5


def test_bytes_input_keeps_alpha():
    photo = make_photo(64, 48).convert("RGBA")
    photo.putalpha(128)
    result = tiny("coloria-cnn").colorize(to_bytes(photo))
    assert result.mode == "RGBA" and result.getpixel((3, 3))[3] == 128


def test_working_size_override_changes_the_model_pass_only():
    colorizer = tiny("wallner-beta")
    photo = make_photo(200, 100)
    assert colorizer.colorize(photo, size=64).size == (200, 100)
    with pytest.raises(RequestError, match="size must be between"):
        colorizer.colorize(photo, size=5000)


def test_batch_equals_one_by_one():
    colorizer = tiny("zhang-eccv16")
    greys = [imaging.to_model_input(make_photo(seed=i), 64) for i in range(3)]
    batch = colorizer.colorize_working_batch([WorkItem(g) for g in greys])
    for grey, together in zip(greys, batch, strict=True):
        alone = np.asarray(colorizer.colorize_working(grey), dtype=int)
        assert np.abs(alone - np.asarray(together, dtype=int)).max() <= 1


def test_seed_is_repeatable_and_matters():
    colorizer = tiny("bigcolor")
    grey = imaging.to_model_input(make_photo(), 64)
    a, b = (np.asarray(colorizer.colorize_working(grey, seed=s)) for s in (1, 1))
    c = np.asarray(colorizer.colorize_working(grey, seed=2))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_options_a_model_does_not_take_are_refused():
    with pytest.raises(RequestError, match="does not take colour hints"):
        tiny("wallner-beta").check_options(parse_hints('[{"x":0.5,"y":0.5,"color":"#ff0000"}]'))
    with pytest.raises(RequestError, match="does not take a seed"):
        tiny("wallner-beta").check_options(seed=3)


@pytest.mark.parametrize(
    "raw, message",
    [
        ("not json", "hints must be JSON"),
        ('{"x": 1}', "must be a JSON list"),
        ('[{"x": 2, "y": 0, "color": "#000000"}]', "between 0 and 1"),
        ('[{"x": 0, "y": 0, "color": "red"}]', "hex colour"),
        ('[{"x": 0, "y": 0}]', "x, y and color"),
    ],
)
def test_bad_hints_are_explained(raw, message):
    with pytest.raises(RequestError, match=message):
        parse_hints(raw)


def test_hints_become_ab_and_mask():
    hints = parse_hints('[{"x": 0.0, "y": 1.0, "color": "#ff0000"}]')
    hint_ab, mask = hints_to_tensors(hints, 48, 64)  # a 4:3 picture: 48 rows, 64 columns
    assert hint_ab.shape == (1, 2, 48, 64) and mask.shape == (1, 1, 48, 64)
    assert mask[0, 0, 47, 0] == 1 and mask.sum() > 0 and mask[0, 0, 0, 63] == 0
    assert hint_ab[0, 0, 47, 0] > 50  # red has a large positive a*


def test_hints_change_the_hint_model_output():
    colorizer = tiny("zhang-siggraph17")
    grey = imaging.to_model_input(make_photo(), 64)
    plain = np.asarray(colorizer.colorize_working(grey), dtype=int)
    hinted = colorizer.colorize_working(grey, hints=parse_hints('[{"x":0.5,"y":0.5,"color":"#0000ff"}]'))
    assert np.abs(plain - np.asarray(hinted, dtype=int)).sum() > 0


def test_load_without_weights_uses_an_untrained_model(tmp_path, caplog):
    colorizer = Colorizer.load("coloria-cnn", tmp_path, "cpu")
    assert colorizer.meta["provenance"] == "untrained" and "no weights" in caplog.text


def test_device_setting(monkeypatch):
    monkeypatch.setenv("COLORIZERS_DEVICE", "cpu")
    assert select_device().type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA device"):
            select_device("cuda")
