"""Shared fixtures: small photos made in memory."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from tests.helpers import make_photo, to_bytes

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture
def photo() -> Image.Image:
    return make_photo()


@pytest.fixture
def photo_png(photo: Image.Image) -> bytes:
    return to_bytes(photo)
