"""The TorchServe handler, driven with a stand-in for TorchServe's context (integration tests use the real one)."""

from __future__ import annotations

import io
import json

import pytest
import torch
from PIL import Image

from colorizers import create_model, weights
from tests.helpers import make_photo, to_bytes


class FakeContext:
    """Just enough of ts.context.Context: system properties and per-request response fields."""

    def __init__(self, model_dir):
        self.system_properties = {"model_dir": str(model_dir), "gpu_id": None}
        self.status: dict[int, tuple[int, str]] = {}
        self.content_type: dict[int, str] = {}

    def set_response_status(self, code, phrase, idx=0):
        self.status[idx] = (code, phrase)

    def set_response_content_type(self, idx, value):
        self.content_type[idx] = value


@pytest.fixture
def handler(tmp_path):
    import handler as handler_module

    torch.manual_seed(0)
    weights.save(create_model("zhang-siggraph17", "tiny"), tmp_path, half=False)
    service = handler_module.ColorizerHandler()
    context = FakeContext(tmp_path)
    threads = torch.get_num_threads()
    service.initialize(context)
    assert torch.get_num_threads() == 1  # one torch thread per worker process on CPU by default
    yield service, context
    torch.set_num_threads(threads)


def test_cpu_threads_come_from_the_environment(monkeypatch):
    import handler as handler_module

    monkeypatch.setenv("COLORIZERS_TORCH_THREADS", "3")
    assert handler_module.cpu_threads() == 3
    for bad in ("0", "two"):
        monkeypatch.setenv("COLORIZERS_TORCH_THREADS", bad)
        with pytest.raises(RuntimeError, match="COLORIZERS_TORCH_THREADS"):
            handler_module.cpu_threads()


def test_batch_returns_one_png_per_request_and_errors_in_place(handler):
    service, context = handler
    grey = to_bytes(make_photo(256, 256).convert("L"))
    data = [
        {"data": grey},
        {"body": b"this is not an image"},
        {"data": to_bytes(make_photo(90, 40)), "hints": b'[{"x":0.1,"y":0.2,"color":"#00ff00"}]'},
        {"data": grey, "seed": b"abc"},
    ]
    out = service.handle(data, context)
    assert len(out) == 4
    first = Image.open(io.BytesIO(out[0]))
    assert first.size == (256, 256) and first.mode == "RGB" and context.content_type[0] == "image/png"
    assert context.status[1][0] == 400 and json.loads(out[1])["error"]["code"] == "unsupported_image"
    # any image is resized to about the working size's area, keeping its aspect ratio (90 x 40: 9:4)
    assert Image.open(io.BytesIO(out[2])).size == (384, 171)
    assert context.status[3][0] == 400 and "whole number" in json.loads(out[3])["error"]["message"]


def test_size_option_sets_the_working_size(handler):
    service, context = handler
    out = service.handle([{"data": to_bytes(make_photo()), "size": b"64"}], context)
    assert Image.open(io.BytesIO(out[0])).size == (78, 52)  # 96 x 64 (3:2) at about 64 x 64 pixels


def test_archive_must_hold_one_sidecar(tmp_path):
    import handler as handler_module

    with pytest.raises(RuntimeError, match="exactly one weights sidecar"):
        handler_module.ColorizerHandler().initialize(FakeContext(tmp_path))
