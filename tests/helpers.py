"""Test helpers: small deterministic photos made in memory, image bytes, free ports, a recipe's step context."""

from __future__ import annotations

import io
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image


def make_photo(width: int = 96, height: int = 64, seed: int = 0) -> Image.Image:
    """A smooth, colourful synthetic photo (gradients + a disc), deterministic."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    r = 0.5 + 0.5 * np.sin(x / width * 3.1 + rng.uniform(0, 3))
    g = 0.5 + 0.5 * np.cos(y / height * 2.7 + rng.uniform(0, 3))
    b = ((x - width / 2) ** 2 + (y - height / 2) ** 2 < (min(width, height) / 3) ** 2).astype(np.float32)
    rgb = np.stack([r, g, 0.3 + 0.6 * b], axis=-1)
    return Image.fromarray((rgb * 255).astype(np.uint8), "RGB")


def to_bytes(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tiny_weights(directory: Path, *models: str) -> Path:
    """Untrained tiny models of ``models`` saved with their sidecars in ``directory`` (seeded: the same every run)."""
    import torch

    from colorizers import create_model, weights

    torch.manual_seed(0)
    for name in models:
        weights.save(create_model(name, "tiny"), directory, variant="tiny")
    return directory


def use_backend(monkeypatch: pytest.MonkeyPatch, backend: object) -> None:
    """Gateways created from now on in the test serve from ``backend`` (a test double of gateway.backends.Backend)."""

    async def chosen(settings: object, names: object) -> object:
        return backend

    monkeypatch.setattr("gateway.app.choose_backend", chosen)


def cpu_step_context(nets: dict[str, Any], optimizers: dict[str, Any] | None = None) -> Any:
    """A recipe's StepContext on the CPU for ``nets`` (not distributed, no mixed precision, seeded generator)."""
    import torch

    from training.distributed import Distributed
    from training.recipes.base import StepContext

    optimizers = optimizers or {}
    return StepContext(
        nets=nets,
        raw=nets,
        optimizers=optimizers,
        scalers={name: torch.amp.GradScaler("cpu", enabled=False) for name in optimizers},
        device=torch.device("cpu"),
        amp=False,
        grad_clip=None,
        generator=torch.Generator().manual_seed(0),
        distributed=Distributed(torch.device("cpu")),
    )
