"""The backend interface: a grey working-size image in (uncompressed BMP), the colour PNG at that size out."""

from __future__ import annotations

import abc


class Backend(abc.ABC):
    """Where models run. Raises gateway errors (Unavailable, ModelFailed, DeadlineExceeded, ...)."""

    name: str

    async def start(self) -> None:  # noqa: B027  (optional hook, a no-op by default)
        """Open connections or load models; called once before serving."""

    async def close(self) -> None:  # noqa: B027  (optional hook, a no-op by default)
        """Release connections and threads."""

    @abc.abstractmethod
    async def reachable(self) -> bool:
        """Whether the backend answers at all (used by /readyz)."""

    @abc.abstractmethod
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
        """Colour PNG at the working size for one grey image (BMP bytes) at the model's working size.

        ``size`` is the request's working size, if it named one (the grey image already has it). ``reference``:
        the colour reference photo at the working size (BMP bytes), for models that take one.
        """
