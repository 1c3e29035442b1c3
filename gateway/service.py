"""ColorizeService: the one async core behind REST and gRPC (validate, fan out, merge, store)."""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

import numpy as np
from PIL import Image

from colorizers import imaging
from colorizers.conventions import Conventions
from colorizers.pipeline import (
    MAX_SIZE,
    MIN_SIZE,
    ReferenceRequestError,
    RequestError,
    check_reference_image,
    decode_reference,
    missing_reference,
    parse_hints,
    reference_input,
)
from gateway import metrics
from gateway.backends.base import Backend
from gateway.catalogue import ModelInfo
from gateway.errors import (
    BadRequest,
    GatewayError,
    NotFound,
    PayloadTooLarge,
    TooManyRequests,
    Unavailable,
    Unprocessable,
    from_exception,
)
from gateway.quotas import ClientQuotas
from gateway.settings import Settings
from gateway.store import ResultStore

log = logging.getLogger(__name__)

ALL = "all"
AUTO = "auto"  # output format: JPEG for a JPEG, WebP for a WebP without alpha, PNG for anything else
_PROBE_SIZE = 32
_DRAFT_MARGIN = 2  # a big JPEG's model inputs come from a draft at least this many times their working size
_SAFE_STEM = re.compile(r"[^A-Za-z0-9_-]+")


@dataclass
class Upload:
    filename: str
    data: bytes


@dataclass
class Options:
    """What a client asked for, as received (validated by the service)."""

    model: str = ALL
    format: str = AUTO
    hints: str | None = None
    seed: int | None = None
    size: int | None = None
    reference: bytes | None = None  # the colour reference photo's file bytes, for models that take one


@dataclass
class ModelOutput:
    model: str
    status: str  # "ok", "error" or "timeout"
    latency_ms: float
    name: str | None = None
    media_type: str | None = None
    data: bytes | None = None
    error: GatewayError | None = None


@dataclass
class FileResult:
    filename: str
    width: int
    height: int
    outputs: list[ModelOutput] = field(default_factory=list)


@dataclass
class ColorizeResult:
    id: str
    expires_at: float
    files: list[FileResult]

    def first_error(self) -> GatewayError | None:
        """The error to answer with when nothing succeeded (None if anything did)."""
        outputs = [o for f in self.files for o in f.outputs]
        if any(o.status == "ok" for o in outputs):
            return None
        return next((o.error for o in outputs if o.error), None)


class ColorizeService:
    def __init__(self, settings: Settings, backend: Backend, store: ResultStore, catalogue: dict[str, ModelInfo]):
        self.settings = settings
        self.backend = backend
        self.store = store
        self.catalogue = catalogue
        self._in_flight = 0
        self.quotas = ClientQuotas(
            settings.key_requests_per_minute, settings.key_burst, settings.key_max_concurrent
        )

    # -- models and readiness -------------------------------------------------------------------

    def models(self) -> list[ModelInfo]:
        return list(self.catalogue.values())

    async def probe(self) -> None:
        """Refresh readiness: one tiny request per model not known to be ready."""
        if not await self.backend.reachable():
            for info in self.catalogue.values():
                info.ready, info.reason = False, f"{self.backend.name} backend unreachable"
            return
        grey = imaging.model_input_bytes(Image.new("L", (_PROBE_SIZE, _PROBE_SIZE), 128))
        reference = imaging.model_input_bytes(Image.new("RGB", (_PROBE_SIZE, _PROBE_SIZE), (200, 90, 40)))

        async def probe_one(info: ModelInfo) -> None:
            try:
                timeout = self.settings.model_timeout_seconds
                extra: dict[str, Any] = {"reference": reference} if info.needs_reference else {}
                await self.backend.infer(info.id, grey, hints=None, seed=None, timeout=timeout, **extra)
                info.ready, info.reason = True, "ok"
            except GatewayError as exc:
                info.ready, info.reason = False, exc.message

        await asyncio.gather(*(probe_one(i) for i in self.catalogue.values() if not i.ready))

    async def run_prober(self) -> None:
        while True:
            try:
                await self.probe()
            except Exception:  # the prober must survive anything a backend does
                log.exception("readiness probe failed")
            await asyncio.sleep(self.settings.readiness_probe_seconds)

    async def ready(self) -> tuple[bool, str]:
        if not await self.backend.reachable():
            return False, f"the {self.backend.name} backend is unreachable"
        if not await asyncio.to_thread(self.store.reachable):  # disk or network: off the event loop
            return False, "the result store is unreachable"
        waiting = [i.id for i in self.catalogue.values() if not i.ready]
        if len(waiting) == len(self.catalogue):
            return False, "no model is ready yet"
        return True, "ready" if not waiting else f"ready; not ready: {', '.join(waiting)}"

    # -- colourisation --------------------------------------------------------------------------

    async def colorize(
        self, uploads: Sequence[Upload], options: Options, *, client: str | None = None
    ) -> ColorizeResult:
        """Every upload through every requested model, models concurrently; per-model status.

        ``client`` (an API key's fingerprint) is held to its quotas (gateway/quotas.py)."""
        models = self._models_for(options.model)
        if not uploads:
            raise BadRequest("send at least one image in the 'images' field")
        if len(uploads) > self.settings.max_files:
            raise BadRequest(f"at most {self.settings.max_files} images per request, got {len(uploads)}")
        if options.model == ALL and len(uploads) != 1:
            raise BadRequest("'all' models takes exactly one image; send one image or pick a model")
        self._check_options(options, models)
        async with self._slot(client):
            references = await self._decode_reference(models, options)
            result_id, expires_at = self.store.new_id(), self.store.expires_at()
            files = []
            for index, upload in enumerate(uploads):
                photo, inputs = await self._decode(upload, models, options)
                inputs.update(references)
                started = time.perf_counter()
                outputs = await asyncio.gather(
                    *(
                        self._run_model(photo, inputs, upload, index, m, options, result_id, expires_at)
                        for m in models
                    )
                )
                if len(models) > 1:
                    metrics.FANOUT_SECONDS.observe(time.perf_counter() - started)
                original = await photo.original
                files.append(FileResult(upload.filename, *original.decoded.size, list(outputs)))
            return ColorizeResult(result_id, expires_at, files)

    async def colorize_stream(
        self, upload: Upload, model_names: Sequence[str], options: Options, *, client: str | None = None
    ) -> AsyncGenerator[tuple[str, float, ModelOutput], None]:
        """One image through several models; yields (result id, expiry, output) as each model finishes."""
        models = [self._model(n) for n in model_names] if model_names else self._models_for(ALL)
        self._check_options(options, models)
        async with self._slot(client):
            references = await self._decode_reference(models, options)
            result_id, expires_at = self.store.new_id(), self.store.expires_at()
            photo, inputs = await self._decode(upload, models, options)
            inputs.update(references)
            started = time.perf_counter()
            tasks = [
                asyncio.create_task(self._run_model(photo, inputs, upload, 0, m, options, result_id, expires_at))
                for m in models
            ]
            try:
                for next_done in asyncio.as_completed(tasks):
                    yield result_id, expires_at, await next_done
            finally:
                for task in tasks:
                    task.cancel()
                metrics.FANOUT_SECONDS.observe(time.perf_counter() - started)

    # -- steps ----------------------------------------------------------------------------------

    def _model(self, name: str) -> ModelInfo:
        try:
            return self.catalogue[name]
        except KeyError:
            known = ", ".join(sorted(self.catalogue))
            raise NotFound(f"unknown model {name!r}; choose one of: {known}, or 'all'", code="unknown_model") from None

    def _models_for(self, name: str) -> list[ModelInfo]:
        return list(self.catalogue.values()) if name == ALL else [self._model(name)]

    def _check_options(self, options: Options, models: Sequence[ModelInfo]) -> None:
        if options.format != AUTO and options.format not in imaging.MEDIA_TYPES:
            raise Unprocessable(f"format must be one of {AUTO}, {', '.join(sorted(imaging.MEDIA_TYPES))}")
        try:
            hints = parse_hints(options.hints) if options.hints else []
        except RequestError as exc:
            raise from_exception(exc) from None
        single = len(models) == 1
        if hints and single and not models[0].supports_hints:
            raise Unprocessable(f"model {models[0].id} does not take colour hints")
        if options.seed is not None:
            if single and not models[0].supports_seed:
                raise Unprocessable(f"model {models[0].id} does not take a seed")
            if not 0 <= options.seed < 2**31:
                raise Unprocessable("seed must be between 0 and 2147483647")
        if options.size is not None and not MIN_SIZE <= options.size <= MAX_SIZE:
            raise Unprocessable(f"size must be between {MIN_SIZE} and {MAX_SIZE} pixels")
        if options.reference is not None and not any(m.supports_reference for m in models):
            names = ", ".join(m.id for m in models)
            raise from_exception(
                ReferenceRequestError(f"{names} take no reference photo; send none, or pick a model that takes one")
            )
        if options.reference is None and single and models[0].needs_reference:
            raise from_exception(missing_reference(models[0].id))

    async def _decode_reference(
        self, models: Sequence[ModelInfo], options: Options
    ) -> dict[tuple[int, str], bytes]:
        """The reference photo at each working size of the models that take it, keyed (size, "reference")."""
        if options.reference is None:
            return {}
        if len(options.reference) > self.settings.max_upload_bytes:
            mib = self.settings.max_upload_bytes / 2**20
            raise PayloadTooLarge(f"reference photo: the file is larger than {mib:g} MiB")
        if not options.reference:
            raise BadRequest("the reference photo is empty", code="empty_file")
        metrics.BYTES.labels("in").inc(len(options.reference))
        sizes = {_input_key(m, options.size)[0] for m in models if m.supports_reference}
        try:
            return await asyncio.to_thread(
                _reference_inputs, options.reference, self.settings.max_pixels, sizes
            )
        except (imaging.ImageError, RequestError) as exc:
            raise from_exception(exc) from None

    async def _decode(
        self, upload: Upload, models: Sequence[ModelInfo], options: Options
    ) -> tuple[_Photo, dict[tuple[int, str], bytes]]:
        """The photo, and the grey model input at each (working size, preprocess) the models need (one thread hop).

        The models need not wait for the full-size pixels of a big photo: a big JPEG's inputs come from a DCT-scaled
        draft, and its full decode starts alongside as soon as its header has been read; that decode and the
        lightness of any photo big enough for the table merge are made in a background thread while the models run.
        """
        if len(upload.data) > self.settings.max_upload_bytes:
            mib = self.settings.max_upload_bytes / 2**20
            raise PayloadTooLarge(f"{upload.filename}: the file is larger than {mib:g} MiB")
        if not upload.data:
            raise BadRequest(f"{upload.filename}: the file is empty", code="empty_file")
        metrics.BYTES.labels("in").inc(len(upload.data))
        data, max_pixels = upload.data, self.settings.max_pixels
        keys = {_input_key(m, options.size) for m in models}
        background: list[Future[_Original]] = []  # the original, when it takes more than the first decode

        def start_full_decode() -> None:  # in the decoding thread, as soon as the header shows a draft will do
            background.append(_BACKGROUND.submit(_complete_original, data, None, max_pixels, _lab(models)))

        try:
            first, inputs = await asyncio.to_thread(_decode_with_inputs, data, max_pixels, keys, start_full_decode)
        except imaging.ImageError as exc:
            raise _upload_error(upload, exc) from None
        if not background and first.size[0] * first.size[1] >= imaging.TABLE_MERGE_MIN_PIXELS:  # its lightness
            background.append(_BACKGROUND.submit(_complete_original, data, first, max_pixels, _lab(models)))
        original: asyncio.Future[_Original]
        if background:
            original = asyncio.ensure_future(_awaited_original(upload, background[0]))
        else:
            original = asyncio.get_running_loop().create_future()
            original.set_result(_Original(first))
        return _Photo(_output_format(options.format, first), original), inputs

    async def _run_model(
        self,
        photo: _Photo,
        inputs: dict[tuple[int, str], bytes],
        upload: Upload,
        index: int,
        info: ModelInfo,
        options: Options,
        result_id: str,
        expires_at: float,
    ) -> ModelOutput:
        """Never raises: a failing or slow model becomes that model's error status."""
        started = time.perf_counter()
        deadline = self.settings.model_timeout_seconds
        answered = False  # past the backend call, a failure (the photo, the result store) says nothing of the model
        try:
            key = _input_key(info, options.size)
            extra = {}
            if info.supports_reference and (key[0], REFERENCE) in inputs:
                extra["reference"] = inputs[(key[0], REFERENCE)]
            elif info.needs_reference:  # in an all-models request without a reference: this model's own error
                raise from_exception(missing_reference(info.id))
            colour = await asyncio.wait_for(
                self.backend.infer(
                    info.id,
                    inputs[key],
                    hints=options.hints if info.supports_hints else None,
                    seed=options.seed if info.supports_seed else None,
                    timeout=deadline,
                    size=options.size,
                    **extra,
                ),
                deadline + 1.0,
            )
            answered = True
            info.ready, info.reason = True, "ok"
            fmt = photo.output_format
            name = f"{index}-{_stem(upload.filename)}.{info.id}.{_extension(fmt)}"
            merge = Conventions.from_dict(info.conventions).merge
            original = await photo.original
            data = await asyncio.to_thread(
                self._finish, original, colour, fmt, key[0], result_id, name, expires_at, merge
            )
            output = ModelOutput(info.id, "ok", _ms(started), name, imaging.MEDIA_TYPES[fmt], data)
            metrics.BYTES.labels("out").inc(len(data))
        except Exception as exc:
            error = from_exception(exc)
            if error.http_status == 500:
                log.error("model %s failed on %s", info.id, upload.filename, exc_info=exc)
            if not answered and isinstance(error, Unavailable | NotFound):
                info.ready, info.reason = False, error.message
            status = "timeout" if error.code == "timeout" else "error"
            output = ModelOutput(info.id, status, _ms(started), error=error)
        metrics.MODEL_SECONDS.labels(info.id, output.status).observe(output.latency_ms / 1000)
        return output

    def _finish(
        self,
        original: _Original,
        colour: bytes,
        fmt: str,
        size: int,
        result_id: str,
        name: str,
        expires_at: float,
        merge: str = "lab",
    ) -> bytes:
        """Merge, encode and store one model's result (one worker-thread hop)."""
        data = _merge_and_encode(original, colour, fmt, size, merge=merge)
        self.store.put(result_id, name, data, expires_at)
        return data

    def _slot(self, client: str | None) -> _Slot:
        return _Slot(self, client)


class _Slot:
    """Admission control: at most ``max_concurrent_requests`` colourisations at once, and the client's quotas;
    else 429."""

    def __init__(self, service: ColorizeService, client: str | None):
        self.service = service
        self.client = client

    async def __aenter__(self) -> None:
        if self.service._in_flight >= self.service.settings.max_concurrent_requests:
            raise TooManyRequests("the gateway is busy; retry in a few seconds")
        self.service.quotas.acquire(self.client)
        self.service._in_flight += 1
        metrics.IN_FLIGHT.inc()

    async def __aexit__(self, *exc: object) -> None:
        self.service._in_flight -= 1
        metrics.IN_FLIGHT.dec()
        self.service.quotas.release(self.client)


def _input_key(info: ModelInfo, size: int | None) -> tuple[int, str]:
    """(side, preprocess) of the grey picture a model gets: as its weights' conventions say (sidecar)."""
    conventions = Conventions.from_dict(info.conventions)
    return conventions.model_size(size, info.working_size), conventions.preprocess


REFERENCE = "reference"  # the input key's second part for the reference photo at a working size


def _reference_inputs(data: bytes, max_pixels: int, sizes: set[int]) -> dict[tuple[int, str], bytes]:
    """Decode the reference photo (upload limits), check it, and make its working-size copies (BMP bytes)."""
    rgb = decode_reference(data, max_pixels=max_pixels)
    check_reference_image(rgb)
    return {(s, REFERENCE): imaging.model_input_bytes(reference_input(rgb, s)) for s in sizes}


class _Original:
    """The full-size photo that every model's result in a request is merged onto, with the part of the "lab" merge
    that depends on the photo alone (its lightness): made once, by whichever thread needs it first."""

    def __init__(self, decoded: imaging.DecodedImage) -> None:
        self.decoded = decoded
        self._lab_base: imaging.LabMergeBase | None = None
        self._lock = threading.Lock()

    def lab_base(self) -> imaging.LabMergeBase:
        with self._lock:
            if self._lab_base is None:
                self._lab_base = imaging.LabMergeBase(self.decoded.pixels)
            return self._lab_base


@dataclass
class _Photo:
    """One upload as its models' results need it: the format they are encoded in, and the original they are merged
    onto (still being completed in a worker thread for a big photo while the models run)."""

    output_format: str
    original: asyncio.Future[_Original]


# Full-size decodes and lightness of big photos, made while their models run. Not asyncio's default executor: a full
# decode is started from inside the thread that decodes the draft.
_BACKGROUND = ThreadPoolExecutor(thread_name_prefix="gateway-original")


def _decode_with_inputs(
    data: bytes, max_pixels: int, keys: set[tuple[int, str]], on_draft: Callable[[], None]
) -> tuple[imaging.DecodedImage, dict[tuple[int, str], bytes]]:
    """The photo (a DCT-scaled draft if it is a JPEG much bigger than the working sizes) and its model inputs.

    A draft at least twice the largest working size gives inputs within about 0.2 grey levels of those made from the
    full-size pixels on average (see tests/unit/test_imaging.py), at a fraction of the decoding time.
    """
    draft_size = _DRAFT_MARGIN * max(s for s, _ in keys)
    decoded = imaging.decode(data, max_pixels=max_pixels, draft_size=draft_size, on_draft=on_draft)
    return decoded, {
        (s, p): imaging.model_input_bytes(imaging.to_model_input(decoded.pixels, s, preprocess=p)) for s, p in keys
    }


def _complete_original(
    data: bytes, decoded: imaging.DecodedImage | None, max_pixels: int, with_lab_base: bool
) -> _Original:
    """The full-size original (decoded from ``data`` unless given), with its "lab" merge base if one will be needed."""
    original = _Original(decoded if decoded is not None else imaging.decode(data, max_pixels=max_pixels))
    if with_lab_base:
        original.lab_base()
    return original


async def _awaited_original(upload: Upload, background: Future[_Original]) -> _Original:
    try:
        return await asyncio.wrap_future(background)
    except imaging.ImageError as exc:
        raise _upload_error(upload, exc) from None


def _lab(models: Sequence[ModelInfo]) -> bool:
    """Whether any of the models' results is merged in Lab (DeOldify's are in YCbCr, with no lightness to share)."""
    return any(Conventions.from_dict(m.conventions).merge == "lab" for m in models)


def _output_format(asked: str, decoded: imaging.DecodedImage) -> str:
    """The format asked for; for "auto", a JPEG's or an opaque WebP's own (small, like the upload), else PNG."""
    if asked != AUTO:
        return asked
    return decoded.format if decoded.format in ("jpeg", "webp") and decoded.alpha is None else "png"


def _upload_error(upload: Upload, exc: imaging.ImageError) -> GatewayError:
    error = from_exception(exc)
    error.message = f"{upload.filename}: {error.message}"
    return error


def _merge_and_encode(original: _Original, colour_png: bytes, fmt: str, size: int, *, merge: str = "lab") -> bytes:
    """The colour result at the photo's size: the model's chroma on the photo's own lightness.

    A photo already at its model input size (``imaging.model_input_size``) went to the model unresized, so the
    model's result (its lightness is the photo's, to 8-bit rounding) needs no merge, and when a PNG without alpha
    is asked for it is returned as it is; not so with a YCbCr merge (DeOldify's), whose model output has a
    lightness of its own.
    """
    decoded = original.decoded
    unresized = merge == "lab" and decoded.size == imaging.model_input_size(*decoded.size, size)
    if unresized and fmt == "png" and decoded.alpha is None:
        return colour_png
    colour = imaging.decode(colour_png).rgb
    merged: Image.Image | np.ndarray
    if unresized:
        merged = colour
    elif merge == "lab":
        merged = original.lab_base().merge(colour)
    else:
        merged = imaging.merge_chroma(decoded.pixels, colour, merge=merge)
    return imaging.encode(merged, fmt, alpha=decoded.alpha)


def _stem(filename: str) -> str:
    return _SAFE_STEM.sub("_", PurePath(filename or "image").stem)[:60].strip("_") or "image"


def _extension(fmt: str) -> str:
    return "jpg" if fmt == "jpeg" else fmt


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


