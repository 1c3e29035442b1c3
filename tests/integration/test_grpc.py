"""The gRPC API against a running gateway: models, one model, the all-models stream, health, reflection, errors."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING

import grpc
import httpx
import pytest
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from PIL import Image

from gateway.catalogue import ModelInfo
from gateway.errors import DeadlineExceeded, ModelFailed
from gateway.grpc_server import start_grpc_server
from gateway.proto import colorizer_pb2 as pb
from gateway.proto import colorizer_pb2_grpc as pb_grpc
from gateway.service import ColorizeResult, FileResult, ModelOutput, Options, Upload
from gateway.settings import Settings

if TYPE_CHECKING:
    from conftest import RunningGateway

pytestmark = pytest.mark.integration

MESSAGE_LIMIT = 64 * 1024 * 1024
CHANNEL_OPTIONS = [("grpc.max_send_message_length", MESSAGE_LIMIT), ("grpc.max_receive_message_length", MESSAGE_LIMIT)]
SMALL = pb.Options(size=64)  # a small working size keeps the model passes fast


def open_channel(address: str) -> grpc.Channel:
    channel = grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
    grpc.channel_ready_future(channel).result(timeout=10)
    return channel


@pytest.fixture(scope="module")
def channel(embedded_gateway: RunningGateway) -> Iterator[grpc.Channel]:
    with open_channel(embedded_gateway.grpc_address) as channel:
        yield channel


@pytest.fixture(scope="module")
def stub(channel: grpc.Channel) -> pb_grpc.ColorizerStub:
    return pb_grpc.ColorizerStub(channel)


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def test_list_models_mirrors_the_catalogue(stub: pb_grpc.ColorizerStub, embedded_gateway: RunningGateway) -> None:
    models = {m.id: m for m in stub.ListModels(pb.ListModelsRequest(), timeout=10).models}
    assert set(models) == set(embedded_gateway.settings.models)
    for model in models.values():
        assert model.family and model.architecture == model.id and model.description
        assert model.working_size >= 32
        assert model.provenance == "untrained"
    assert models["zhang-siggraph17"].supports_hints
    assert not models["coloria-cnn"].supports_hints


def test_colorize_returns_a_png_of_the_input_size(
    stub: pb_grpc.ColorizerStub, embedded_gateway: RunningGateway, photo_png: bytes
) -> None:
    reply = stub.Colorize(pb.ColorizeRequest(image=photo_png, filename="street.png", model="coloria-cnn"), timeout=30)
    assert reply.model == "coloria-cnn"
    assert reply.media_type == "image/png"
    image = decode(reply.image)
    assert image.format == "PNG" and image.size == (96, 64) == (reply.width, reply.height)
    assert reply.latency_ms > 0 and reply.expires_at > 0
    assert reply.url == f"/v1/results/{reply.result_id}/0-street.coloria-cnn.png"
    download = httpx.get(embedded_gateway.base_url + reply.url, timeout=10)
    assert download.status_code == 200 and download.content == reply.image


def test_colorize_options_reach_the_model(stub: pb_grpc.ColorizerStub, photo_png: bytes) -> None:
    hints = [pb.Hint(x=0.25, y=0.5, color="#cc3300"), pb.Hint(x=1, y=0, color="3366cc")]
    options = pb.Options(format=pb.IMAGE_FORMAT_JPEG, size=64, hints=hints)
    reply = stub.Colorize(pb.ColorizeRequest(image=photo_png, model="zhang-siggraph17", options=options), timeout=30)
    assert reply.media_type == "image/jpeg"
    assert decode(reply.image).format == "JPEG"


def test_colorize_all_streams_one_message_per_model(
    stub: pb_grpc.ColorizerStub, embedded_gateway: RunningGateway, photo_png: bytes
) -> None:
    replies = list(stub.ColorizeAll(pb.ColorizeAllRequest(image=photo_png, options=SMALL), timeout=60))
    assert sorted(r.model for r in replies) == sorted(embedded_gateway.settings.models)
    assert len({r.result_id for r in replies}) == 1
    for reply in replies:
        assert reply.status == pb.MODEL_STATUS_OK, reply.error.message
        assert not reply.HasField("error")
        assert decode(reply.image).size == (96, 64)
        assert reply.url.endswith(f".{reply.model}.png")


def test_colorize_all_runs_only_the_listed_models(stub: pb_grpc.ColorizerStub, photo_png: bytes) -> None:
    request = pb.ColorizeAllRequest(image=photo_png, models=["wallner-beta", "wallner-beta"], options=SMALL)
    assert [r.model for r in stub.ColorizeAll(request, timeout=60)] == ["wallner-beta"]


def test_health_reports_serving(channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "colorizer.v1.Colorizer"):
        reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_describes_the_service(channel: grpc.Channel) -> None:
    database = ProtoReflectionDescriptorDatabase(channel)
    assert "colorizer.v1.Colorizer" in database.get_services()
    service = DescriptorPool(database).FindServiceByName("colorizer.v1.Colorizer")
    assert {m.name for m in service.methods} == {"ListModels", "Colorize", "ColorizeAll"}
    assert service.methods_by_name["ColorizeAll"].server_streaming


def rpc_error(call: Callable[[], object]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        result = call()
        if isinstance(result, Iterator):
            list(result)
    return raised.value


def test_not_an_image_is_invalid_argument_with_a_readable_message(stub: pb_grpc.ColorizerStub) -> None:
    request = pb.ColorizeRequest(image=b"this is not an image", filename="notes.txt", model="coloria-cnn")
    error = rpc_error(lambda: stub.Colorize(request, timeout=10))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("notes.txt: ") and "image" in error.details().lower()
    stream = pb.ColorizeAllRequest(image=b"", filename="empty.png")
    error = rpc_error(lambda: stub.ColorizeAll(stream, timeout=10))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "empty" in error.details()


def test_unknown_model_is_not_found(stub: pb_grpc.ColorizerStub, photo_png: bytes) -> None:
    error = rpc_error(lambda: stub.Colorize(pb.ColorizeRequest(image=photo_png, model="no-such-model"), timeout=10))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert "no-such-model" in error.details() and "coloria-cnn" in error.details()
    request = pb.ColorizeAllRequest(image=photo_png, models=["coloria-cnn", "no-such-model"])
    assert rpc_error(lambda: stub.ColorizeAll(request, timeout=10)).code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    ("model", "options", "words"),
    [
        ("", pb.Options(), "model"),
        ("coloria-cnn", pb.Options(seed=3), "seed"),
        ("coloria-cnn", pb.Options(size=5000), "size"),
        ("zhang-siggraph17", pb.Options(hints=[pb.Hint(x=2, y=0.5, color="#ffffff")]), "between 0 and 1"),
        ("zhang-siggraph17", pb.Options(hints=[pb.Hint(x=0.5, y=0.5, color="red")]), "hex colour"),
    ],
)
def test_bad_options_are_invalid_argument(
    stub: pb_grpc.ColorizerStub, photo_png: bytes, model: str, options: pb.Options, words: str
) -> None:
    request = pb.ColorizeRequest(image=photo_png, model=model, options=options)
    error = rpc_error(lambda: stub.Colorize(request, timeout=10))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert words in error.details()


def test_grpc_calls_are_counted_in_the_metrics(stub: pb_grpc.ColorizerStub, embedded_gateway: RunningGateway) -> None:
    stub.ListModels(pb.ListModelsRequest(), timeout=10)
    text = httpx.get(embedded_gateway.base_url + "/metrics", timeout=10).text
    assert 'gateway_requests_total{api="/colorizer.v1.Colorizer/ListModels",method="GRPC",status="OK"}' in text
    assert 'gateway_request_duration_seconds_count{api="/colorizer.v1.Colorizer/ListModels",method="GRPC"}' in text


def test_api_keys_and_message_limits(gateway_factory: Callable[..., RunningGateway], photo_png: bytes) -> None:
    gateway = gateway_factory(models=["coloria-cnn"], api_keys=["s3cret"], grpc_max_message_bytes=len(photo_png) + 1024)
    with open_channel(gateway.grpc_address) as channel:
        stub = pb_grpc.ColorizerStub(channel)
        for metadata in ((), (("authorization", "Bearer wrong"),), (("authorization", "s3cret"),)):
            error = rpc_error(lambda m=metadata: stub.ListModels(pb.ListModelsRequest(), metadata=m, timeout=10))
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED
            assert "Bearer" in error.details()
        key = (("authorization", "Bearer s3cret"),)
        models = stub.ListModels(pb.ListModelsRequest(), metadata=key, timeout=10).models
        assert [m.id for m in models] == ["coloria-cnn"]
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert health.status == health_pb2.HealthCheckResponse.SERVING  # probes need no key
        too_big = pb.ColorizeRequest(image=photo_png * 2, model="coloria-cnn")
        error = rpc_error(lambda: stub.Colorize(too_big, metadata=key, timeout=10))
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_a_key_over_its_rate_gets_resource_exhausted_with_retry_after(
    gateway_factory: Callable[..., RunningGateway], photo_png: bytes
) -> None:
    gateway = gateway_factory(
        models=["coloria-cnn"], api_keys=["s3cret"], key_requests_per_minute=2, key_burst=1
    )
    request = pb.ColorizeRequest(image=photo_png, model="coloria-cnn")
    key = (("authorization", "Bearer s3cret"),)
    with open_channel(gateway.grpc_address) as channel:
        stub = pb_grpc.ColorizerStub(channel)
        assert stub.Colorize(request, metadata=key, timeout=30).image
        error = rpc_error(lambda: stub.Colorize(request, metadata=key, timeout=30))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "rate" in error.details()
    assert dict(error.trailing_metadata())["retry-after"] == "30"  # 2 a minute: the next token in 30 s


class ScriptedService:
    """Stands in for ColorizeService to drive the failure paths a healthy embedded gateway never takes."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.stream_closed = asyncio.Event()

    def models(self) -> list[ModelInfo]:
        raise RuntimeError("a bug in the catalogue")

    async def colorize(
        self, uploads: list[Upload], options: Options, *, client: str | None = None
    ) -> ColorizeResult:
        late = ModelOutput(options.model, "timeout", 1000.0, error=DeadlineExceeded("model slow did not answer in 1 s"))
        return ColorizeResult("r" * 32, 1.0, [FileResult(uploads[0].filename, 4, 4, [late])])

    async def colorize_stream(
        self, upload: Upload, model_names: list[str], options: Options, *, client: str | None = None
    ) -> AsyncIterator[tuple[str, float, ModelOutput]]:
        try:
            yield "r" * 32, 1.0, ModelOutput("good", "ok", 2.0, "0-a.good.png", "image/png", b"colour")
            await self.release.wait()
            yield "r" * 32, 1.0, ModelOutput("broken", "error", 3.0, error=ModelFailed("model broken failed: boom"))
            yield "r" * 32, 1.0, ModelOutput("slow", "timeout", 9.0, error=DeadlineExceeded("model slow is late"))
        finally:
            self.stream_closed.set()


@pytest.fixture
async def scripted(free_tcp_port: int) -> AsyncIterator[tuple[ScriptedService, pb_grpc.ColorizerStub]]:
    service = ScriptedService()
    settings = Settings(http_host="127.0.0.1", grpc_port=free_tcp_port, api_keys=[])
    server = await start_grpc_server(service, settings)  # type: ignore[arg-type]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{free_tcp_port}", options=CHANNEL_OPTIONS) as channel:
        yield service, pb_grpc.ColorizerStub(channel)
    await server.stop(grace=None)


async def test_stream_sends_each_model_as_it_finishes_with_its_status(
    scripted: tuple[ScriptedService, pb_grpc.ColorizerStub],
) -> None:
    service, stub = scripted
    call = stub.ColorizeAll(pb.ColorizeAllRequest(image=b"x"), timeout=10)
    first = await asyncio.wait_for(call.read(), 5)  # arrives while the other models are still running
    assert (first.model, first.status, first.image, first.url) == (
        "good",
        pb.MODEL_STATUS_OK,
        b"colour",
        f"/v1/results/{'r' * 32}/0-a.good.png",
    )
    service.release.set()
    broken, slow = [await call.read() for _ in range(2)]
    assert (broken.status, broken.error.code, broken.error.message) == (
        pb.MODEL_STATUS_ERROR,
        "model_error",
        "model broken failed: boom",
    )
    assert (slow.status, slow.error.code) == (pb.MODEL_STATUS_TIMEOUT, "timeout")
    assert not broken.image and not broken.url
    assert await call.read() is grpc.aio.EOF
    assert await call.code() == grpc.StatusCode.OK


async def test_a_client_hanging_up_stops_the_stream(scripted: tuple[ScriptedService, pb_grpc.ColorizerStub]) -> None:
    service, stub = scripted
    call = stub.ColorizeAll(pb.ColorizeAllRequest(image=b"x"), timeout=10)
    await call.read()
    call.cancel()
    await asyncio.wait_for(service.stream_closed.wait(), 5)


async def test_colorize_fails_with_its_only_models_error(
    scripted: tuple[ScriptedService, pb_grpc.ColorizerStub],
) -> None:
    _, stub = scripted
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.Colorize(pb.ColorizeRequest(image=b"x", model="slow"), timeout=10)
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert raised.value.details() == "model slow did not answer in 1 s"


async def test_a_bug_is_internal_and_the_server_keeps_serving(
    scripted: tuple[ScriptedService, pb_grpc.ColorizerStub],
) -> None:
    _, stub = scripted
    for _ in range(2):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.ListModels(pb.ListModelsRequest(), timeout=10)
        assert raised.value.code() == grpc.StatusCode.INTERNAL
        assert "a bug" not in raised.value.details()  # internals stay in the log
