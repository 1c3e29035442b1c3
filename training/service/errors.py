"""Errors a client can act on; the API turns each into ``{"error": {"code", "message"}}`` with its HTTP status."""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """An error a client can act on: HTTP status, machine-readable code, human message."""

    http_status = 500
    code = "internal_error"

    def __init__(self, message: str, *, code: str | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}


class NotFound(ServiceError):
    http_status, code = 404, "not_found"


class Conflict(ServiceError):
    http_status, code = 409, "conflict"


class Unprocessable(ServiceError):
    http_status, code = 422, "invalid_request"
