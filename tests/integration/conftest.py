"""Integration fixtures: a real gateway (embedded backend, untrained compact models) on free loopback ports."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn

from gateway.app import create_app
from gateway.settings import Settings

# Fast models with no weights on disk, so the gateway builds untrained compact ones; one takes hints.
FAST_MODELS = ["coloria-cnn", "wallner-beta", "zhang-siggraph17"]
STARTUP_SECONDS = 60.0


@dataclass
class RunningGateway:
    settings: Settings
    base_url: str  # http://127.0.0.1:<port>
    grpc_address: str  # 127.0.0.1:<port>


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gateway_settings(tmp: Path, **overrides: object) -> Settings:
    """Settings for a test gateway: embedded backend, free ports, empty weights and result folders under ``tmp``."""
    (tmp / "weights").mkdir(parents=True, exist_ok=True)
    values: dict[str, object] = {
        "backend": "embedded",
        "http_host": "127.0.0.1",
        "http_port": free_port(),
        "grpc_port": free_port(),
        "weights_dir": tmp / "weights",
        "result_dir": tmp / "results",
        "models": FAST_MODELS,
        "api_keys": [],
        "embedded_threads": 2,
        "readiness_probe_seconds": 3600.0,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@contextlib.contextmanager
def run_gateway(settings: Settings) -> Iterator[RunningGateway]:
    """The FastAPI app (REST, web page and gRPC) under uvicorn in a background thread, until the block ends."""
    config = uvicorn.Config(
        create_app(settings), host=settings.http_host, port=settings.http_port, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"gateway-{settings.http_port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_SECONDS
    while not server.started:  # set once the lifespan (models loaded, gRPC bound) and the HTTP bind are done
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the test gateway did not start within {STARTUP_SECONDS:g} s (see the log above)")
        time.sleep(0.05)
    try:
        yield RunningGateway(
            settings, f"http://{settings.http_host}:{settings.http_port}", f"{settings.http_host}:{settings.grpc_port}"
        )
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@pytest.fixture(scope="session")
def embedded_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    """One gateway shared by the whole session; tests must not change its settings."""
    with run_gateway(gateway_settings(tmp_path_factory.mktemp("gateway"))) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def gateway_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., RunningGateway]]:
    """Start gateways with settings overrides (``start(api_keys=["k"])``); they stop when the module's tests end."""
    with contextlib.ExitStack() as stack:

        def start(**overrides: object) -> RunningGateway:
            settings = gateway_settings(tmp_path_factory.mktemp("gateway"), **overrides)
            return stack.enter_context(run_gateway(settings))

        yield start


@pytest.fixture
def free_tcp_port() -> int:
    """A loopback TCP port nobody listens on (for servers a test starts itself)."""
    return free_port()
