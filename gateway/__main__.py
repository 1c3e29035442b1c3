"""`python -m gateway`: REST + web page (uvicorn) and gRPC in one process, settings from GATEWAY_*."""

from __future__ import annotations

import logging

import uvicorn

from gateway.app import create_app
from gateway.settings import Settings


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per model call is noise; errors still show
    settings = Settings()
    app = create_app(settings)
    print(f"gateway: REST and web page on http://{settings.http_host}:{settings.http_port}/ , "
          f"gRPC on {settings.http_host}:{settings.grpc_port}", flush=True)
    uvicorn.run(app, host=settings.http_host, port=settings.http_port, log_level="info", timeout_graceful_shutdown=5)


if __name__ == "__main__":
    main()
