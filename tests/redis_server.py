"""A real redis-server on a free loopback port, started the way ``make run`` starts it (deploy/stack.py)."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
import redis

from deploy.stack import redis_command
from tests.helpers import free_port


class RedisServer:
    """``with RedisServer(workdir) as server:`` gives ``server.url`` and ``server.client``; stops it on exit."""

    def __init__(self, workdir: Path, maxmemory: str = "64mb"):
        if not shutil.which("redis-server"):
            pytest.skip("needs Debian's redis-server (apt-get install redis-server, or make system-deps)")
        self.workdir = workdir
        self.maxmemory = maxmemory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.client = redis.Redis(port=self.port)
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start (or start again, on the same port: a restarted Redis holds nothing)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = (self.workdir / "redis.log").open("ab")
        self.process = subprocess.Popen(
            redis_command(self.port, self.maxmemory), cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if self.client.ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not start:\n{(self.workdir / 'redis.log').read_text()[-2000:]}")

    def stop(self) -> None:
        self.client.close()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def fill(self) -> None:
        """Store as much filler as maxmemory on top of what Redis holds (lifting the limit meanwhile), so Redis
        is well past its maxmemory and refuses every write, whatever it frees in the background.
        """
        limit = int(self.client.config_get("maxmemory")["maxmemory"])
        self.client.config_set("maxmemory", 0)
        piece = 65_536
        for index in range(limit // piece + 1):
            self.client.set(f"filler:{index}", bytes(piece))
        self.client.config_set("maxmemory", limit)
