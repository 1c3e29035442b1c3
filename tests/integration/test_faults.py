"""Faults survived with real TorchServe behind a real gateway: nothing a client sent is lost or leaked.

Each test prints one line of figures (what clients saw, how long recovery took); `pytest -s` shows them.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from colorizers import create_model, weights
from tests.helpers import make_photo, to_bytes
from tests.integration.processes import REPO, Gateway, TorchServe
from training.package import build_archive

pytestmark = [pytest.mark.integration, pytest.mark.slow]

if not shutil.which("java"):
    pytest.skip("TorchServe needs Java 17 (make test installs it)", allow_module_level=True)

SLEEPY = "sleepy"  # answers after 300 ms with its input: long enough to be caught mid-request
PHOTO = to_bytes(make_photo(64, 48))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    root = tmp_path_factory.mktemp("faults")
    weights_dir, store = root / "weights", root / "model_store"
    weights.save(create_model("wallner-beta", "tiny"), weights_dir, name=SLEEPY, variant="tiny")
    handler = REPO / "tests" / "fixtures" / "handlers" / "sleepy.py"
    build_archive(SLEEPY, weights_dir=weights_dir, export_dir=store, handler=handler, batchSize=1)
    torchserve = TorchServe(store, [f"{SLEEPY}.mar"], root / "ts").start()
    settings = dict(
        backend="torchserve", torchserve_url=torchserve.inference_url, weights_dir=weights_dir, models=[SLEEPY],
        model_timeout_seconds=30, result_dir=root / "results",
    )
    gateway = Gateway.with_settings(**settings).start()
    try:
        gateway.wait_ready(120)
        yield {"torchserve": torchserve, "gateway": gateway, "settings": settings}
    finally:
        gateway.stop()
        torchserve.stop()


def colorize(base_url: str, timeout: float = 60) -> httpx.Response:
    return httpx.post(
        f"{base_url}/v1/colorize", files={"images": ("photo.png", PHOTO, "image/png")}, data={"model": SLEEPY},
        timeout=timeout,
    )


class Load:
    """``clients`` threads sending requests back to back until stopped; every answer kept with its time."""

    def __init__(self, base_url: str, clients: int):
        self.base_url = base_url
        self.answers: list[tuple[float, float, int, str | None]] = []  # (sent, answered, status, Retry-After)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, daemon=True) for _ in range(clients)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=90)

    def _client(self) -> None:
        while not self._stop.is_set():
            sent = time.monotonic()
            response = colorize(self.base_url)
            self.answers.append((sent, time.monotonic(), response.status_code, response.headers.get("retry-after")))

    def statuses(self) -> Counter[int]:
        return Counter(status for *_, status, _ in self.answers)


def worker_pid(torchserve: TorchServe) -> int:
    described = httpx.get(f"{torchserve.management_url}/models/{SLEEPY}", timeout=10).json()
    return int(described[0]["workers"][0]["pid"])


def test_a_worker_killed_mid_request_costs_no_client_an_error(stack):
    torchserve, gateway = stack["torchserve"], stack["gateway"]
    victim = worker_pid(torchserve)
    with Load(gateway.base_url, clients=3) as load:
        time.sleep(1.0)
        killed = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        while worker_pid(torchserve) == victim or time.monotonic() - killed < 2.0:
            time.sleep(0.2)
        time.sleep(1.0)
    statuses = load.statuses()
    slowest = max(answered - sent for sent, answered, *_ in load.answers)
    print(f"\nworker killed: {sum(statuses.values())} requests, {dict(statuses)}, slowest {slowest:.2f} s")
    assert set(statuses) == {200}, statuses
    retries = httpx.get(f"{gateway.base_url}/metrics", timeout=10).text
    assert f'gateway_backend_retries_total{{model="{SLEEPY}",reason="worker_died"}}' in retries


def test_slow_and_aborted_uploads_leak_nothing_and_block_no_one(stack):
    gateway = stack["gateway"]
    host, port = "127.0.0.1", gateway.settings.http_port
    before = _leftovers(gateway)
    body = b"x" * 3_000_000  # over the 1 MiB at which an upload is spooled to a temporary file
    head = (
        f"POST /v1/colorize HTTP/1.1\r\nHost: {host}\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        f"Content-Length: {len(body) + 200}\r\n\r\n"
        '--b\r\nContent-Disposition: form-data; name="images"; filename="p.png"\r\nContent-Type: image/png\r\n\r\n'
    ).encode()
    for _ in range(10):  # aborted: half of the photo, then the connection closes
        with socket.create_connection((host, port)) as aborted:
            aborted.sendall(head + body[: len(body) // 2])
    trickling = socket.create_connection((host, port))  # slow: a byte stream that hardly moves
    trickling.sendall(head)
    latencies = []
    for chunk in range(10):
        trickling.sendall(body[chunk * 1000 : (chunk + 1) * 1000])
        started = time.monotonic()
        assert colorize(gateway.base_url).status_code == 200  # others are served meanwhile
        latencies.append(time.monotonic() - started)
    trickling.close()
    deadline = time.monotonic() + 15
    while not _none_more(_leftovers(gateway), before) and time.monotonic() < deadline:
        time.sleep(0.2)
    after = _leftovers(gateway)
    print(f"\nslow, aborted uploads: others answered within {max(latencies):.2f} s; files, tasks {before} -> {after}")
    assert _none_more(after, before), f"open files and tasks {before} before, {after} after"
    metrics = httpx.get(f"{gateway.base_url}/metrics", timeout=10).text
    assert "gateway_in_flight_requests 0.0" in metrics


def test_a_client_that_hangs_up_mid_inference_loses_nothing_for_others(stack):
    gateway = stack["gateway"]
    with pytest.raises(httpx.ReadTimeout):
        colorize(gateway.base_url, timeout=0.1)  # gone before the model answers
    assert colorize(gateway.base_url).status_code == 200
    deadline = time.monotonic() + 10
    while "gateway_in_flight_requests 0.0" not in httpx.get(f"{gateway.base_url}/metrics").text:
        assert time.monotonic() < deadline, "a request of a client that left is still counted in flight"
        time.sleep(0.1)


def test_results_outlive_the_gateway_that_made_them(stack):
    settings = stack["settings"]
    first = Gateway.with_settings(**settings).start()
    try:
        url = colorize(first.base_url).json()["files"][0]["outputs"][0]["url"]
    finally:
        first.stop()
    second = Gateway.with_settings(**settings).start()
    try:
        download = httpx.get(f"{second.base_url}{url}", timeout=10)
        assert download.status_code == 200 and download.content[:4] == b"\x89PNG"
    finally:
        second.stop()


def test_torchserve_restarted_under_load_answers_503_with_retry_after_then_recovers(stack):
    torchserve, gateway = stack["torchserve"], stack["gateway"]
    with Load(gateway.base_url, clients=2) as load:
        time.sleep(1.0)
        stopping = time.monotonic()
        torchserve.stop()  # graceful: returns once TorchServe has exited
        down = time.monotonic()
        time.sleep(2.0)
        assert httpx.get(f"{gateway.base_url}/readyz", timeout=5).status_code == 503
        torchserve.start()
        up = time.monotonic()
        while not any(sent > up and status == 200 for sent, _, status, _ in load.answers):
            assert time.monotonic() - up < 60, "no request succeeded within 60 s of TorchServe's return"
            time.sleep(0.1)
        first_ok = min(answered for sent, answered, status, _ in load.answers if sent > up and status == 200)
        time.sleep(1.0)
    statuses = load.statuses()
    refused = [a for a in load.answers if a[2] == 503]
    # A request whose worker is stopped in the middle of its prediction may end as that model's failure (502);
    # that can only happen while TorchServe is shutting down.
    failed = [a for a in load.answers if a[2] == 502]
    print(
        f"\nTorchServe restart: {dict(statuses)}; down for {up - down:.1f} s (restart included), "
        f"first success {first_ok - up:.2f} s after it was back"
    )
    assert set(statuses) <= {200, 502, 503} and statuses[503] > 0, statuses
    assert len(failed) <= 2 and all(stopping <= answered <= down for _, answered, *_ in failed), failed
    assert all(retry_after == "5" for *_, retry_after in refused), refused
    assert [a[2] for a in load.answers if a[0] > first_ok] == [200] * sum(a[0] > first_ok for a in load.answers)
    gateway.wait_ready(60)


def _leftovers(gateway: Gateway) -> tuple[int, int]:
    """Open files of this process (the test gateway runs in it) and asyncio tasks alive on the gateway's loop."""
    loop = gateway.server.servers[0].get_loop()
    return len(os.listdir("/proc/self/fd")), len(asyncio.all_tasks(loop))


def _none_more(now: tuple[int, int], before: tuple[int, int]) -> bool:
    return all(n <= b for n, b in zip(now, before, strict=True))
