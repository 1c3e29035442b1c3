"""The real stack: archives built by the packager, served by TorchServe (Java 17), behind the gateway.

One TorchServe instance holds every served model (tiny weights) plus test archives: a handler that
sleeps 300 ms registered under six names, one that raises and one that hangs.
"""

from __future__ import annotations

import io
import json
import shutil
import time

import grpc
import httpx
import pytest
import torch
from PIL import Image

from colorizers import create_model, get_spec, list_models, weights
from gateway.proto import colorizer_pb2 as pb
from gateway.proto import colorizer_pb2_grpc as pb_grpc
from tests.helpers import make_photo, to_bytes
from tests.integration.processes import REPO, Gateway, TorchServe
from training.package import build_archive, describe, register

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SERVED = [s.id for s in list_models(served_only=True)]
SLEEPY = [f"sleepy-{i}" for i in range(1, 7)]
HANDLERS = REPO / "tests" / "fixtures" / "handlers"
GRPC_OPTIONS = [("grpc.max_receive_message_length", 64 * 2**20), ("grpc.max_send_message_length", 64 * 2**20)]

if not shutil.which("java"):
    pytest.skip("TorchServe needs Java 17 (make test installs it)", allow_module_level=True)


def _test_double(weights_dir, name: str) -> None:
    """Weights + sidecar under a test name, so the packager and the gateway treat it as a model."""
    weights.save(create_model("wallner-beta", "tiny"), weights_dir, name=name, variant="tiny")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("stack")
    weights_dir, store = root / "weights", root / "model_store"
    torch.manual_seed(0)
    for name in SERVED:
        weights.save(create_model(name, "tiny"), weights_dir, variant="tiny")
        build_archive(name, weights_dir=weights_dir, export_dir=store)
    for name, handler in (("sleepy", "sleepy.py"), ("broken", "broken.py"), ("hanging", "hanging.py")):
        _test_double(weights_dir, name)
        build_archive(name, weights_dir=weights_dir, export_dir=store, handler=HANDLERS / handler, batchSize=1)
    for name in SLEEPY:
        _test_double(weights_dir, name)
    models = [f"{m}.mar" for m in SERVED] + [f"{n}=sleepy.mar" for n in SLEEPY] + ["broken.mar", "hanging.mar"]
    torchserve = TorchServe(store, models, root / "ts").start()
    gateway = Gateway.with_settings(
        backend="torchserve", torchserve_url=torchserve.inference_url, weights_dir=weights_dir,
        models=SERVED, model_timeout_seconds=30,
    ).start()
    try:
        gateway.wait_ready(120)
        yield {"torchserve": torchserve, "gateway": gateway, "weights": weights_dir, "store": store, "root": root}
    finally:
        gateway.stop()
        torchserve.stop()


@pytest.fixture(scope="module")
def fanout_gateway(stack):
    """A second gateway over the same TorchServe whose 'all' is the six sleepy models + broken + hanging."""
    gateway = Gateway.with_settings(
        backend="torchserve", torchserve_url=stack["torchserve"].inference_url, weights_dir=stack["weights"],
        models=[*SLEEPY, "broken", "hanging"], model_timeout_seconds=3,
    ).start()
    yield gateway
    gateway.stop()


def post(base_url: str, model: str, image: bytes, *, reference: bytes | None = None, **form) -> httpx.Response:
    files = [("images", ("photo.png", image, "image/png"))]
    if reference is not None:
        files.append(("reference", ("reference.png", reference, "image/png")))
    return httpx.post(f"{base_url}/v1/colorize", files=files, data={"model": model, **form}, timeout=120)


def reference_for(model: str) -> bytes | None:
    """A colour reference photo (another view of the test photo) for the models that need one."""
    return to_bytes(make_photo(120, 90, seed=3).transpose(Image.Transpose.FLIP_LEFT_RIGHT)) if (
        get_spec(model).needs_reference
    ) else None


def test_archive_carries_its_config_and_version(stack):
    manifest = describe(stack["store"] / "zhang-eccv16.mar")
    assert manifest["model"]["modelName"] == "zhang-eccv16"
    assert manifest["model"]["configFile"] == "model-config.yaml"
    assert manifest["model"]["modelVersion"].count(".") == 1


@pytest.mark.parametrize("model", SERVED)
def test_every_served_model_through_rest(stack, model):
    photo = make_photo(333, 222, seed=3)
    response = post(stack["gateway"].base_url, model, to_bytes(photo), reference=reference_for(model))
    assert response.status_code == 200, response.text
    output = response.json()["files"][0]["outputs"][0]
    assert output["status"] == "ok", output
    image = Image.open(io.BytesIO(httpx.get(stack["gateway"].base_url + output["url"]).content))
    assert image.size == photo.size


@pytest.mark.parametrize("model", SERVED)
def test_every_served_model_through_grpc(stack, model):
    photo = make_photo(150, 100, seed=4)
    with grpc.insecure_channel(stack["gateway"].grpc_address, options=GRPC_OPTIONS) as channel:
        reply = pb_grpc.ColorizerStub(channel).Colorize(
            pb.ColorizeRequest(
                image=to_bytes(photo), model=model, filename="p.png", reference=reference_for(model) or b""
            ),
            timeout=120,
        )
    assert Image.open(io.BytesIO(reply.image)).size == photo.size


def test_all_models_fan_out_returns_every_model(stack):
    reference = reference_for("exemplar")  # goes only to the models that take one
    body = post(stack["gateway"].base_url, "all", to_bytes(make_photo(200, 120)), reference=reference, seed="5").json()
    outputs = body["files"][0]["outputs"]
    assert sorted(o["model"] for o in outputs) == sorted(SERVED)
    assert all(o["status"] == "ok" for o in outputs), outputs


def test_grpc_stream_returns_every_model(stack):
    with grpc.insecure_channel(stack["gateway"].grpc_address, options=GRPC_OPTIONS) as channel:
        replies = list(
            pb_grpc.ColorizerStub(channel).ColorizeAll(pb.ColorizeAllRequest(image=to_bytes(make_photo())), timeout=120)
        )
    assert sorted(r.model for r in replies) == sorted(SERVED)


def test_fan_out_is_concurrent_and_isolates_failures(fanout_gateway):
    fanout_gateway.wait_ready(60, every_model=False)
    started = time.perf_counter()
    outputs = {
        o["model"]: o
        for o in post(fanout_gateway.base_url, "all", to_bytes(make_photo(64, 64))).json()["files"][0]["outputs"]
    }
    elapsed = time.perf_counter() - started
    assert all(outputs[name]["status"] == "ok" for name in SLEEPY), outputs
    sleepy_latency = max(outputs[name]["latency_ms"] for name in SLEEPY) / 1000
    assert sleepy_latency < 6 * 0.3 * 0.6, f"six 300 ms models took {sleepy_latency:.2f} s: not concurrent"
    assert outputs["broken"]["status"] == "error" and outputs["broken"]["error"]["code"] == "model_error"
    assert outputs["hanging"]["status"] == "timeout"
    assert elapsed < 3 + 3, "the hanging model held the others beyond its deadline"


def test_model_errors_and_bad_input_through_torchserve(stack, fanout_gateway):
    response = post(fanout_gateway.base_url, "broken", to_bytes(make_photo()))
    assert response.status_code == 502 and "broken" in response.json()["error"]["message"]
    response = post(stack["gateway"].base_url, "zhang-siggraph17", to_bytes(make_photo()), hints='[{"x":1}]')
    assert response.status_code == 422


def test_torchserve_metrics_are_prometheus_text(stack):
    text = httpx.get(f"{stack['torchserve'].metrics_url}/metrics", timeout=10).text
    assert "ts_inference_requests_total" in text or "Requests2XX" in text


def test_training_registers_a_new_version_without_restart(stack):
    store, weights_dir = stack["store"], stack["weights"]
    sidecar = weights_dir / "wallner-beta.json"
    meta = json.loads(sidecar.read_text())
    meta["created"] = "2031-01-02T03:04:05+00:00"
    sidecar.write_text(json.dumps(meta))
    archive = build_archive("wallner-beta", weights_dir=weights_dir, export_dir=store)
    version = register(stack["torchserve"].management_url, archive)
    assert version == "20310102.030405"
    described = httpx.get(f"{stack['torchserve'].management_url}/models/wallner-beta").json()
    assert described[0]["modelVersion"] == version
    assert post(stack["gateway"].base_url, "wallner-beta", to_bytes(make_photo())).status_code == 200
