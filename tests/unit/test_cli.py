"""The `colorize` command: one output per input and model, bad files reported without stopping the rest."""

from __future__ import annotations

import torch
from PIL import Image

from colorizers import cli, create_model, weights
from tests.helpers import make_photo


def test_every_model_writes_a_same_size_output(tmp_path, capsys):
    torch.manual_seed(0)
    store = tmp_path / "weights"
    for model_id in ("wallner-beta", "bigcolor"):
        weights.save(create_model(model_id, "tiny"), store)
    good = tmp_path / "good.jpg"
    make_photo(150, 100).save(good)
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    out = tmp_path / "out"
    code = cli.main([str(good), str(bad), "-m", "all", "-o", str(out), "--weights-dir", str(store), "--seed", "4"])
    assert code == 1  # one bad file
    assert "bad.jpg" in capsys.readouterr().err
    written = sorted(p.name for p in out.iterdir())
    assert "good.wallner-beta.png" in written and "good.bigcolor.png" in written
    assert all(Image.open(out / name).size == (150, 100) for name in written)


def test_unknown_model_is_a_usage_error(tmp_path, capsys):
    assert cli.main([str(tmp_path / "x.png"), "-m", "nope", "-o", str(tmp_path)]) == 2
    assert "unknown model" in capsys.readouterr().err
