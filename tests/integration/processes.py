"""Real processes for integration tests: TorchServe through deploy/torchserve/start.sh, the gateway under uvicorn."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn

from gateway.app import create_app
from gateway.settings import Settings
from tests.helpers import free_port

REPO = Path(__file__).resolve().parents[2]
START_SCRIPT = REPO / "deploy" / "torchserve" / "start.sh"
CONFIG = REPO / "deploy" / "torchserve" / "config.properties"


class TorchServe:
    """TorchServe on free loopback ports, started by the same script the container runs."""

    def __init__(self, store: Path, models: list[str], workdir: Path):
        self.store, self.models, self.workdir = store, models, workdir
        self.ports = {name: free_port() for name in ("inference", "management", "metrics", "grpc", "grpc_mgmt")}
        self.inference_url = f"http://127.0.0.1:{self.ports['inference']}"
        self.management_url = f"http://127.0.0.1:{self.ports['management']}"
        self.metrics_url = f"http://127.0.0.1:{self.ports['metrics']}"
        self.process: subprocess.Popen | None = None

    def _config(self) -> Path:
        text = CONFIG.read_text()
        for key, port in (
            ("inference_address", self.ports["inference"]),
            ("management_address", self.ports["management"]),
            ("metrics_address", self.ports["metrics"]),
        ):
            text = re.sub(rf"^{key}=http://127.0.0.1:\d+", f"{key}=http://127.0.0.1:{port}", text, flags=re.M)
        text = re.sub(r"^grpc_inference_port=\d+", f"grpc_inference_port={self.ports['grpc']}", text, flags=re.M)
        text = re.sub(r"^grpc_management_port=\d+", f"grpc_management_port={self.ports['grpc_mgmt']}", text, flags=re.M)
        path = self.workdir / "config.properties"
        path.write_text(text)
        return path

    def start(self, timeout: float = 240.0) -> TorchServe:
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            "MODEL_STORE": str(self.store),
            "TS_CONFIG": str(self._config()),
            "TS_MODELS": " ".join(self.models),
            "TS_LOG_DIR": str(self.workdir / "logs"),
        }
        log = open(self.workdir / "torchserve.out", "ab")  # noqa: SIM115 (closed with the process)
        self.process = subprocess.Popen(
            ["bash", str(START_SCRIPT)], cwd=self.workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        """Until /ping is healthy and every model has a ready worker."""
        deadline = time.monotonic() + timeout
        names = [m.split("=")[0].removesuffix(".mar") for m in self.models]
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"TorchServe exited: {self.log_tail()}")
            try:
                if httpx.get(f"{self.inference_url}/ping", timeout=2).status_code == 200 and all(
                    self._ready(name) for name in names
                ):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(1)
        raise TimeoutError(f"TorchServe not ready in {timeout} s: {self.log_tail()}")

    def _ready(self, name: str) -> bool:
        described = httpx.get(f"{self.management_url}/models/{name}", timeout=5).json()
        return any(w.get("status") == "READY" for m in described for w in m.get("workers", []))

    def log_tail(self) -> str:
        files = [self.workdir / "torchserve.out", self.workdir / "logs" / "ts_log.log"]
        return "\n".join(f.read_text(errors="replace")[-3000:] for f in files if f.exists())

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


class Gateway:
    """The gateway app under a real uvicorn server (REST + gRPC) in a background thread."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.base_url = f"http://127.0.0.1:{settings.http_port}"
        self.grpc_address = f"127.0.0.1:{settings.grpc_port}"
        config = uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=settings.http_port, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @classmethod
    def with_settings(cls, **settings: object) -> Gateway:
        """Free ports, a quick readiness probe and, unless a store is given, results in a new temporary folder."""
        if "result_dir" not in settings and "result_store_url" not in settings:
            settings["result_dir"] = Path(tempfile.mkdtemp(prefix="gateway-results-"))
        return cls(Settings(http_port=free_port(), grpc_port=free_port(), readiness_probe_seconds=0.5, **settings))

    def start(self, timeout: float = 60.0) -> Gateway:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the gateway did not start")
            time.sleep(0.05)
        return self

    def wait_ready(self, timeout: float = 60.0, *, every_model: bool = True) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            body = httpx.get(f"{self.base_url}/readyz", timeout=5).json()
            if body["status"] == "ready" and (not every_model or all(body["models"].values())):
                return body
            if time.monotonic() > deadline:
                raise TimeoutError(f"gateway not ready: {body}")
            time.sleep(0.2)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
