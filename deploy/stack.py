"""Run the whole stack locally: TorchServe (when Java 17 is present), Redis, the gateway and the training service.

``python deploy/stack.py run`` stays in the foreground and stops everything on Ctrl-C;
``up`` starts the same in the background (pids and logs in .run/) and ``down`` stops it.
Redis (Debian's redis-server, when installed) holds the gateway's results; without it they go to .run/results.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUN_DIR = REPO / ".run"
PIDS = RUN_DIR / "pids.json"
TS_START = REPO / "deploy" / "torchserve" / "start.sh"
TS_CONFIG = REPO / "deploy" / "torchserve" / "config.properties"
REDIS_MAXMEMORY = "1gb"  # about 250 results of a 12-megapixel scan (4 MB as JPEG) within their 10 minutes


def java_major() -> int | None:
    """Major version of the java on PATH, or None when there is none."""
    if not shutil.which("java"):
        return None
    out = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr
    match = re.search(r'version "(\d+)', out)
    return int(match.group(1)) if match else None


def ts_address(key: str, default: str) -> str:
    for line in TS_CONFIG.read_text().splitlines():
        if line.strip().startswith(f"{key}="):
            return line.split("=", 1)[1].strip()
    return default


def redis_command(port: int, maxmemory: str = REDIS_MAXMEMORY) -> list[str]:
    """redis-server as the result store: loopback only, nothing written to disk (results are short-lived), and
    at ``maxmemory`` it refuses new results (the gateway answers 507) instead of evicting results that clients
    are about to download.
    """
    return [
        "redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
        "--maxmemory", maxmemory, "--maxmemory-policy", "noeviction", "--loglevel", "warning",
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_tcp(port: int, timeout: float, process: subprocess.Popen) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def wait_http(url: str, timeout: float, process: subprocess.Popen | None = None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(1)
    return False


def start(detached: bool) -> dict[str, subprocess.Popen]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    python = sys.executable
    RUN_DIR.mkdir(exist_ok=True)
    processes: dict[str, subprocess.Popen] = {}

    def launch(name: str, command: list[str], extra_env: dict[str, str] | None = None) -> subprocess.Popen:
        output = open(RUN_DIR / f"{name}.log", "ab") if detached else None  # noqa: SIM115 (lives with the child)
        process = subprocess.Popen(
            command,
            cwd=REPO,
            env={**env, **(extra_env or {})},
            stdout=output,
            stderr=subprocess.STDOUT if output else None,
            start_new_session=detached,
        )
        processes[name] = process
        return process

    store_env: dict[str, str] = {}
    store = env.get("GATEWAY_RESULT_STORE_URL") or env.get("GATEWAY_RESULT_DIR")  # the caller's own choice
    if not store:
        store = "the folder .run/results"  # the gateway's default
        if not shutil.which("redis-server"):
            print(f"stack: no redis-server (apt-get install redis-server): results go to {store}")
        else:
            port = free_port()
            redis = launch("redis", redis_command(port))
            if wait_tcp(port, 20, redis):
                store = store_env["GATEWAY_RESULT_STORE_URL"] = f"redis://127.0.0.1:{port}/0"
            else:
                print(f"stack: redis-server did not start (see its output): results go to {store}")
                stop({"redis": redis})
                processes.pop("redis")
    inference = ts_address("inference_address", "http://127.0.0.1:8080")
    management = ts_address("management_address", "http://127.0.0.1:8081")
    backend = "embedded"
    major = java_major()
    if major is None or major < 17:
        found = "no java" if major is None else f"Java {major}"
        print(f"stack: TorchServe needs Java 17 or newer ({found} found): serving from the embedded backend")
    elif not any((REPO / "model_store").glob("*.mar")):
        print("stack: no archives in model_store (run `make archives`): serving from the embedded backend")
    else:
        ts = launch("torchserve", ["bash", str(TS_START)], {"MODEL_STORE": str(REPO / "model_store")})
        print(f"stack: starting TorchServe ({inference}) ...", flush=True)
        if wait_http(f"{inference}/ping", 240, ts):
            backend = "torchserve"
        else:
            print("stack: TorchServe did not become healthy: serving from the embedded backend (see its log)")
            stop({"torchserve": ts})
            processes.pop("torchserve")
    launch("training", [python, "-m", "training", "serve"], {"TRAINING_TORCHSERVE_MANAGEMENT_URL": management})
    gateway = launch("gateway", [python, "-m", "gateway"], {"GATEWAY_BACKEND": backend, **store_env})
    http = f"http://{os.environ.get('GATEWAY_HTTP_HOST', '127.0.0.1')}:{os.environ.get('GATEWAY_HTTP_PORT', '8000')}"
    if not wait_http(f"{http}/healthz", 120, gateway):
        stop(processes)
        sys.exit("stack: the gateway did not start; see its output above or .run/gateway.log")
    training = f"http://127.0.0.1:{os.environ.get('TRAINING_PORT', '8090')}"
    grpc_port = os.environ.get("GATEWAY_GRPC_PORT", "50051")
    print(
        "\nstack is up:\n"
        f"  web page      {http}/\n"
        f"  REST API      {http}/v1/models   (OpenAPI docs: {http}/docs)\n"
        f"  gRPC          127.0.0.1:{grpc_port}\n"
        f"  metrics       {http}/metrics\n"
        f"  training API  {training}/v1/jobs\n"
        f"  backend       {backend}"
        + (f" ({inference}, metrics {ts_address('metrics_address', '')})" if backend == "torchserve" else "")
        + f"\n  results       {store}\n",
        flush=True,
    )
    return processes


def stop(processes: dict[str, subprocess.Popen]) -> None:
    for _name, process in reversed(list(processes.items())):
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes.values():
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
    if "torchserve" in processes:
        stop_torchserve()


def stop_torchserve() -> None:
    subprocess.run([str(Path(sys.executable).parent / "torchserve"), "--stop"], capture_output=True, cwd=REPO)


def run() -> None:
    processes = start(detached=False)
    print("Press Ctrl-C to stop.", flush=True)
    try:
        while all(p.poll() is None for p in processes.values()):
            time.sleep(1)
        dead = [name for name, p in processes.items() if p.poll() is not None]
        print(f"stack: {', '.join(dead)} exited; stopping the rest")
    except KeyboardInterrupt:
        print("\nstack: stopping ...")
    finally:
        stop(processes)


def up() -> None:
    processes = start(detached=True)
    PIDS.write_text(json.dumps({name: p.pid for name, p in processes.items()}))
    print(f"stack: running in the background; logs in {RUN_DIR}/, stop with `make down`")


def down() -> None:
    if not PIDS.exists():
        print("stack: nothing to stop")
        return
    for name, pid in json.loads(PIDS.read_text()).items():
        try:
            os.killpg(pid, signal.SIGTERM)
            print(f"stack: stopped {name}")
        except ProcessLookupError:
            pass
    stop_torchserve()
    PIDS.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["run", "up", "down"])
    {"run": run, "up": up, "down": down}[parser.parse_args().command]()


if __name__ == "__main__":
    main()
