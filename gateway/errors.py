"""One error module: each failure maps once to an HTTP status and once to a gRPC status."""

from __future__ import annotations

import grpc

from colorizers.imaging import ImageError
from colorizers.pipeline import ReferenceRequestError, RequestError


class GatewayError(Exception):
    """An error a client can act on: machine-readable code, human message, HTTP and gRPC status."""

    http_status = 500
    grpc_status = grpc.StatusCode.INTERNAL
    code = "internal_error"
    retry_after: int | None = None  # seconds a client should wait before trying again (429, 503)

    def __init__(self, message: str, *, code: str | None = None, retry_after: int | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        if retry_after is not None:
            self.retry_after = retry_after

    def body(self) -> dict:
        return {"error": {"code": self.code, "message": self.message}}


class BadRequest(GatewayError):
    http_status, grpc_status, code = 400, grpc.StatusCode.INVALID_ARGUMENT, "bad_request"


class Unauthorized(GatewayError):
    http_status, grpc_status, code = 401, grpc.StatusCode.UNAUTHENTICATED, "unauthorized"


class NotFound(GatewayError):
    http_status, grpc_status, code = 404, grpc.StatusCode.NOT_FOUND, "not_found"


class PayloadTooLarge(GatewayError):
    http_status, grpc_status, code = 413, grpc.StatusCode.RESOURCE_EXHAUSTED, "too_large"


class UnsupportedMedia(GatewayError):
    http_status, grpc_status, code = 415, grpc.StatusCode.INVALID_ARGUMENT, "unsupported_image"


class Unprocessable(GatewayError):
    http_status, grpc_status, code = 422, grpc.StatusCode.INVALID_ARGUMENT, "invalid_option"


class TooManyRequests(GatewayError):
    http_status, grpc_status, code = 429, grpc.StatusCode.RESOURCE_EXHAUSTED, "busy"
    retry_after = 1


class ModelFailed(GatewayError):
    http_status, grpc_status, code = 502, grpc.StatusCode.INTERNAL, "model_error"


class Unavailable(GatewayError):
    http_status, grpc_status, code = 503, grpc.StatusCode.UNAVAILABLE, "unavailable"
    retry_after = 5  # about how long TorchServe takes to restart a worker


class DeadlineExceeded(GatewayError):
    http_status, grpc_status, code = 504, grpc.StatusCode.DEADLINE_EXCEEDED, "timeout"


class InsufficientStorage(GatewayError):
    """The result store has no room for a result: Redis at its maxmemory, or the result folder's disk full."""

    http_status, grpc_status, code = 507, grpc.StatusCode.RESOURCE_EXHAUSTED, "result_store_full"


_IMAGE_ERRORS: dict[str, type[GatewayError]] = {
    "image_too_large": PayloadTooLarge,
    "unsupported_image": UnsupportedMedia,
    "corrupt_image": BadRequest,
}


def from_exception(exc: BaseException) -> GatewayError:
    """The one translation from library exceptions to gateway errors."""
    if isinstance(exc, GatewayError):
        return exc
    if isinstance(exc, ImageError):
        cls = _IMAGE_ERRORS.get(getattr(exc, "code", ""), BadRequest)
        return cls(str(exc), code=getattr(exc, "code", None))
    if isinstance(exc, ReferenceRequestError):  # a missing, unwanted or unusable reference photo
        return BadRequest(str(exc), code=exc.code)
    if isinstance(exc, RequestError):
        return Unprocessable(str(exc))
    if isinstance(exc, TimeoutError):
        return DeadlineExceeded("the model did not answer in time")
    return GatewayError("internal error; the gateway log has the details")
