"""Embedded backend: the same pipeline in-process, on a small thread pool (no TorchServe needed)."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from colorizers import imaging
from colorizers.pipeline import Colorizer
from gateway.backends.base import Backend
from gateway.errors import DeadlineExceeded, ModelFailed, NotFound, from_exception

log = logging.getLogger(__name__)


class EmbeddedBackend(Backend):
    name = "embedded"

    def __init__(self, models: list[str], weights_dir: Path | None, *, threads: int = 2):
        self.models = models
        self.weights_dir = weights_dir
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="embedded-model")
        self._colorizers: dict[str, Colorizer] = {}
        self._failed: dict[str, str] = {}

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for name in self.models:
            try:
                self._colorizers[name] = await loop.run_in_executor(
                    self._pool, Colorizer.load, name, self.weights_dir, "cpu"
                )
            except Exception as exc:  # one broken model must not stop the others from loading
                log.exception("cannot load model %s", name)
                self._failed[name] = str(exc)

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def reachable(self) -> bool:
        return True

    async def infer(
        self,
        model: str,
        grey: bytes,
        *,
        hints: str | None,
        seed: int | None,
        timeout: float,
        size: int | None = None,
        reference: bytes | None = None,
    ) -> bytes:
        colorizer = self._colorizers.get(model)
        if colorizer is None:
            reason = self._failed.get(model)
            raise ModelFailed(f"model {model} could not be loaded: {reason}") if reason else NotFound(
                f"unknown model {model}"
            )
        loop = asyncio.get_running_loop()

        def run() -> bytes:
            item = colorizer.prepare(grey, hints=hints, seed=seed, size=size, reference=reference)
            return imaging.encode(colorizer.colorize_working_batch([item])[0], "png")

        try:
            return await asyncio.wait_for(loop.run_in_executor(self._pool, run), timeout)
        except TimeoutError:
            raise DeadlineExceeded(f"model {model} did not answer within {timeout:g} s") from None
        except Exception as exc:
            error = from_exception(exc)
            if error.http_status == 500:
                log.exception("model %s failed", model)
                raise ModelFailed(f"model {model} failed: {exc}") from exc
            raise error from exc
