"""Shared fixtures: small photos made in memory, a real redis-server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from PIL import Image

from tests.helpers import make_photo, to_bytes
from tests.redis_server import RedisServer

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture
def photo() -> Image.Image:
    return make_photo()


@pytest.fixture
def photo_png(photo: Image.Image) -> bytes:
    return to_bytes(photo)


@pytest.fixture
def redis_server(tmp_path) -> Iterator[RedisServer]:
    """A redis-server of its own for one test (skipped where redis-server is not installed)."""
    with RedisServer(tmp_path / "redis") as server:
        yield server
