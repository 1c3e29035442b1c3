"""gRPC adapter over ColorizeService: the colorizer.v1 servicer, health, reflection and the grpc.aio server."""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Sequence

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from gateway import metrics
from gateway.auth import client_for
from gateway.catalogue import ModelInfo
from gateway.errors import BadRequest, DeadlineExceeded, GatewayError, Unprocessable, from_exception
from gateway.proto import colorizer_pb2 as pb
from gateway.proto import colorizer_pb2_grpc as pb_grpc
from gateway.service import ALL, AUTO, ColorizeService, ModelOutput, Options, Upload
from gateway.settings import Settings

log = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Colorizer"].full_name  # "colorizer.v1.Colorizer"
METRICS_METHOD = "GRPC"  # the "method" label of gateway_requests_total for gRPC calls (HTTP verbs for REST)

_FORMATS = {
    pb.IMAGE_FORMAT_UNSPECIFIED: AUTO,
    pb.IMAGE_FORMAT_PNG: "png",
    pb.IMAGE_FORMAT_JPEG: "jpeg",
    pb.IMAGE_FORMAT_WEBP: "webp",
}
_STATUSES = {"ok": pb.MODEL_STATUS_OK, "error": pb.MODEL_STATUS_ERROR, "timeout": pb.MODEL_STATUS_TIMEOUT}


class ColorizerServicer(pb_grpc.ColorizerServicer):
    """Converts messages to the service's Upload/Options and back; every failure leaves as one gRPC status."""

    def __init__(self, service: ColorizeService, api_keys: Sequence[str] = ()):
        self.service = service
        self.api_keys = list(api_keys)

    async def ListModels(
        self, request: pb.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListModelsResponse:
        async with self._rpc("ListModels", context):
            models = [model_message(info) for info in self.service.models()]
        return pb.ListModelsResponse(models=models)

    async def Colorize(self, request: pb.ColorizeRequest, context: grpc.aio.ServicerContext) -> pb.ColorizeResponse:
        async with self._rpc("Colorize", context) as client:
            response = await self._colorize(request, client)
        return response

    async def ColorizeAll(
        self, request: pb.ColorizeAllRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ColorizeAllResponse]:
        async with self._rpc("ColorizeAll", context) as client:
            names = [] if ALL in request.models else list(dict.fromkeys(request.models))
            upload = Upload(request.filename or "image", request.image)
            options = to_options(request.options, model=ALL, reference=request.reference)
            stream = self.service.colorize_stream(upload, names, options, client=client)
            # aclosing: a client that hangs up cancels the models still running
            async with contextlib.aclosing(stream) as outputs:
                async for result_id, expires_at, output in outputs:
                    yield all_response(result_id, expires_at, output)

    async def _colorize(self, request: pb.ColorizeRequest, client: str | None) -> pb.ColorizeResponse:
        if not request.model or request.model == ALL:
            raise BadRequest("set 'model' to a model id from ListModels (ColorizeAll runs every model)")
        upload = Upload(request.filename or "image", request.image)
        options = to_options(request.options, model=request.model, reference=request.reference)
        result = await self.service.colorize([upload], options, client=client)
        entry = result.files[0]
        output = entry.outputs[0]
        if output.status != "ok":  # the only output failed: the call fails with that model's error
            raise output.error or DeadlineExceeded(f"model {output.model} did not answer in time")
        return pb.ColorizeResponse(
            model=output.model,
            image=output.data,
            media_type=output.media_type,
            latency_ms=output.latency_ms,
            result_id=result.id,
            url=result_url(result.id, output),
            expires_at=result.expires_at,
            width=entry.width,
            height=entry.height,
        )

    @contextlib.asynccontextmanager
    async def _rpc(self, method: str, context: grpc.aio.ServicerContext) -> AsyncIterator[str | None]:
        """Authenticate (yields the client), time and count one call; turn its failure into the error's gRPC status."""
        started = time.perf_counter()
        status = grpc.StatusCode.OK
        try:
            yield self._authenticate(context)
        except GatewayError as error:
            status = error.grpc_status
            metrics.ERRORS.labels(error.code).inc()
            retry = (("retry-after", str(error.retry_after)),) if error.retry_after else ()
            await context.abort(status, error.message, trailing_metadata=retry)
        except grpc.aio.AbortError:
            status = context.code() or grpc.StatusCode.UNKNOWN
            raise
        except Exception as exc:  # a bug must cost one call, never the server
            log.exception("unhandled error in gRPC %s", method)
            failure = from_exception(exc)
            status = failure.grpc_status
            metrics.ERRORS.labels(failure.code).inc()
            await context.abort(status, failure.message)
        except BaseException:  # the client cancelled or the server is stopping
            status = grpc.StatusCode.CANCELLED
            raise
        finally:
            api = f"/{SERVICE_NAME}/{method}"
            metrics.REQUESTS.labels(api, METRICS_METHOD, status.name).inc()
            metrics.REQUEST_SECONDS.labels(api, METRICS_METHOD).observe(time.perf_counter() - started)

    def _authenticate(self, context: grpc.aio.ServicerContext) -> str | None:
        header = next((str(value) for key, value in context.invocation_metadata() or () if key == "authorization"), "")
        offered = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
        return client_for(offered, self.api_keys, how="metadata 'authorization: Bearer <key>'")


def to_options(options: pb.Options, *, model: str, reference: bytes = b"") -> Options:
    """The service's Options from the message; hints become the same JSON the REST API takes."""
    fmt = _FORMATS.get(options.format)
    if fmt is None:
        raise Unprocessable(f"unknown image format {options.format}; use PNG, JPEG or WEBP")
    hints = json.dumps([{"x": h.x, "y": h.y, "color": h.color} for h in options.hints]) if options.hints else None
    return Options(
        model=model,
        format=fmt,
        hints=hints,
        seed=options.seed if options.HasField("seed") else None,
        size=options.size if options.HasField("size") else None,
        reference=reference or None,
    )


def model_message(info: ModelInfo) -> pb.Model:
    message = pb.Model(
        id=info.id,
        family=info.family,
        architecture=info.architecture,
        description=info.description,
        working_size=info.working_size,
        supports_hints=info.supports_hints,
        supports_seed=info.supports_seed,
        supports_reference=info.supports_reference,
        needs_reference=info.needs_reference,
        provenance=info.provenance,
        ready=info.ready,
        reason=info.reason,
        paper=info.paper,
    )
    message.metrics.update(info.metrics)
    return message


def result_url(result_id: str, output: ModelOutput) -> str:
    """The HTTP path the result downloads from (the same as the REST API's)."""
    return f"/v1/results/{result_id}/{output.name}" if output.name else ""


def all_response(result_id: str, expires_at: float, output: ModelOutput) -> pb.ColorizeAllResponse:
    message = pb.ColorizeAllResponse(
        model=output.model,
        status=_STATUSES.get(output.status, pb.MODEL_STATUS_ERROR),
        latency_ms=output.latency_ms,
        result_id=result_id,
        expires_at=expires_at,
    )
    if output.status == "ok":
        message.image = output.data or b""
        message.media_type = output.media_type or ""
        message.url = result_url(result_id, output)
    elif output.error is not None:
        message.error.code = output.error.code
        message.error.message = output.error.message
    return message


async def start_grpc_server(service: ColorizeService, settings: Settings) -> grpc.aio.Server:
    """Bind ``http_host:grpc_port`` and serve colorizer.v1, grpc.health.v1 and reflection; returns the server."""
    limit = settings.grpc_max_message_bytes
    server = grpc.aio.server(
        options=[
            ("grpc.max_send_message_length", limit),
            ("grpc.max_receive_message_length", limit),
            ("grpc.so_reuseport", 0),  # a second gateway on the same port fails instead of sharing it
        ]
    )
    pb_grpc.add_ColorizerServicer_to_server(ColorizerServicer(service, settings.api_keys), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection([SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    host = f"[{settings.http_host}]" if ":" in settings.http_host else settings.http_host
    address = f"{host}:{settings.grpc_port}"
    server.add_insecure_port(address)
    await server.start()
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("gRPC serving %s on %s", SERVICE_NAME, address)
    return server
