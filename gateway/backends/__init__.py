"""Backends behind one interface: TorchServe over HTTP, or the same pipeline in-process."""

from __future__ import annotations

from gateway.backends.base import Backend
from gateway.backends.embedded import EmbeddedBackend
from gateway.backends.torchserve import TorchServeBackend

__all__ = ["Backend", "EmbeddedBackend", "TorchServeBackend"]
