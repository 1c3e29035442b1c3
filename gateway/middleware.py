"""One pure-ASGI middleware for every HTTP response: security headers and request metrics.

Pure ASGI rather than ``@app.middleware("http")``: that form runs each request through an extra task and
memory stream, which costs about a millisecond a layer on a 2-core machine.
"""

from __future__ import annotations

import time

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway import metrics

# The web page loads only its own scripts, styles and images (results may be shown as blob: URLs).
WEB_CSP = (
    "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


class ResponseMiddleware:
    """nosniff and no referrer everywhere; the strict CSP on all but ``csp_exempt`` paths (the OpenAPI pages load
    a CDN bundle); request count and latency per route template, method and status."""

    def __init__(self, app: ASGIApp, csp_exempt: tuple[str, ...] = ()) -> None:
        self.app = app
        self.csp_exempt = csp_exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        with_csp = not scope["path"].startswith(self.csp_exempt)

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "no-referrer")
                if with_csp:
                    headers.setdefault("Content-Security-Policy", WEB_CSP)
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            route = scope.get("route")  # set by the router on this same scope
            api = getattr(route, "path", "static") if route else "unmatched"
            metrics.REQUESTS.labels(api, scope["method"], str(status)).inc()
            metrics.REQUEST_SECONDS.labels(api, scope["method"]).observe(time.perf_counter() - started)
