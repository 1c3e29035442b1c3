"""The exemplar model through the real TorchServe and the gateway: the reference photo reaches the handler."""

from __future__ import annotations

import io
import shutil

import grpc
import httpx
import pytest
import torch
from PIL import Image, ImageOps

from colorizers import create_model, weights
from gateway.proto import colorizer_pb2 as pb
from gateway.proto import colorizer_pb2_grpc as pb_grpc
from tests.helpers import make_photo, to_bytes
from tests.integration.processes import Gateway, TorchServe
from training.package import build_archive

pytestmark = [pytest.mark.integration, pytest.mark.slow]

if not shutil.which("java"):
    pytest.skip("TorchServe needs Java 17 (make test installs it)", allow_module_level=True)


def test_reference_through_torchserve(tmp_path):
    weights_dir, store = tmp_path / "weights", tmp_path / "store"
    torch.manual_seed(0)
    weights.save(create_model("exemplar", "tiny"), weights_dir, variant="tiny")
    build_archive("exemplar", weights_dir=weights_dir, export_dir=store)
    torchserve = TorchServe(store, ["exemplar.mar"], tmp_path / "ts").start()
    gateway = Gateway.with_settings(
        backend="torchserve", torchserve_url=torchserve.inference_url, weights_dir=weights_dir, models=["exemplar"]
    ).start()
    photo = make_photo(150, 100, seed=2)
    reference = to_bytes(ImageOps.mirror(photo))
    try:
        gateway.wait_ready(120)  # the readiness probe sends a reference too
        files = [("images", ("p.png", to_bytes(photo), "image/png")), ("reference", ("r.png", reference, "image/png"))]
        response = httpx.post(f"{gateway.base_url}/v1/colorize", files=files, data={"model": "exemplar"}, timeout=120)
        assert response.status_code == 200, response.text
        url = response.json()["files"][0]["outputs"][0]["url"]
        assert Image.open(io.BytesIO(httpx.get(gateway.base_url + url).content)).size == photo.size
        missing = httpx.post(f"{gateway.base_url}/v1/colorize", files=files[:1], data={"model": "exemplar"}, timeout=60)
        assert missing.status_code == 400 and missing.json()["error"]["code"] == "needs_reference"
        # TorchServe itself refuses a request without the reference the model needs
        predictions = f"{torchserve.inference_url}/predictions/exemplar"
        direct = httpx.post(predictions, files={"data": to_bytes(photo)}, timeout=60)
        assert direct.status_code == 400 and "needs a reference" in direct.text
        with grpc.insecure_channel(gateway.grpc_address) as channel:
            reply = pb_grpc.ColorizerStub(channel).Colorize(
                pb.ColorizeRequest(image=to_bytes(photo), model="exemplar", reference=reference), timeout=120
            )
        assert Image.open(io.BytesIO(reply.image)).size == photo.size
    finally:
        gateway.stop()
        torchserve.stop()
