"""In-process benchmark of the gateway's full-size path for a 12-megapixel scan: decode, merge, encode, end to end.

    .venv/bin/python benchmarks/merge.py [--photo scan.jpg] [--repeats 7] [--model-ms 50]

Figures printed (milliseconds, median of --repeats runs):
1. stages: full decode; DCT-scaled draft decode (what the model inputs come from); a 256 px model input from
   each; the part of the "lab" merge made once per photo (its quantised lightness); one model's merge: exact
   float maths with the lightness computed per model (as every model did before), exact with the lightness
   shared, and through the lookup table; JPEG and PNG encodes of a merged result; the first table merge of the
   process, which builds the 64 MB table;
2. end to end in process: ColorizeService with a stand-in backend that answers after --model-ms (a model pass
   on another device, no CPU used here), JPEG in and JPEG out, results written to a temporary folder: one model,
   and 8 models at once; the gateway's share is the time beyond --model-ms.

Without --photo, the scan is a 4000 x 3000 JPEG (quality 90) of smooth colours with film-like grain, which
decodes about as slowly as a camera photo of that size. Everything is measured twice: on that colour JPEG and on
the same photo as a one-channel (greyscale) JPEG, the usual form of a black-and-white scan.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

from colorizers import imaging
from gateway.backends.base import Backend
from gateway.catalogue import ModelInfo
from gateway.service import ColorizeService, Options, Upload
from gateway.settings import Settings
from gateway.store import open_store

WORKING_SIZE = 256
MODELS = 8


def grainy_scan(width: int = 4000, height: int = 3000) -> bytes:
    """Smooth colours plus grain, as JPEG q90: a synthetic photo that decodes like a real one."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    rgb = np.stack(
        [110 + 90 * np.sin(x / width * 6.3), 120 + 80 * np.cos(y / height * 4.1), 100 + 70 * np.sin((x + y) / 900)],
        axis=-1,
    )
    rgb += np.random.default_rng(0).normal(0.0, 10.0, rgb.shape).astype(np.float32)
    buffer = io.BytesIO()
    Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def greyscale(data: bytes) -> bytes:
    """The same photo as a black-and-white scan is usually saved: a one-channel JPEG q90."""
    buffer = io.BytesIO()
    Image.open(io.BytesIO(data)).convert("L").save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def median_ms(call: Callable[[], object], repeats: int) -> float:
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds) * 1000


@contextmanager
def exact_merges() -> Iterator[None]:
    """Every "lab" merge in float maths, whatever the photo's size (the merge before the lookup table)."""
    threshold = imaging.TABLE_MERGE_MIN_PIXELS
    imaging.TABLE_MERGE_MIN_PIXELS = 2**62
    try:
        yield
    finally:
        imaging.TABLE_MERGE_MIN_PIXELS = threshold


def encoded(image: Image.Image | np.ndarray, fmt: str) -> Callable[[], bytes]:
    return lambda: imaging.encode(image, fmt)


def stages(data: bytes, repeats: int) -> dict[str, float]:
    full = imaging.decode(data)
    draft = imaging.decode(data, draft_size=2 * WORKING_SIZE)
    colour = full.rgb.resize((WORKING_SIZE, WORKING_SIZE), Image.Resampling.BICUBIC)  # a plausible model result
    started = time.perf_counter()
    base = imaging.LabMergeBase(full.pixels)
    merged = base.merge(colour)
    first_merge = (time.perf_counter() - started) * 1000
    with exact_merges():
        exact_base = imaging.LabMergeBase(full.pixels)
        figures = {
            "merge, exact, lightness per model (before)": median_ms(
                lambda: imaging.merge_chroma(full.pixels, colour), max(1, repeats // 3)
            ),
            "merge, exact, lightness shared": median_ms(lambda: exact_base.merge(colour), max(1, repeats // 3)),
        }
    return {
        "decode, full": median_ms(lambda: imaging.decode(data), repeats),
        f"decode, draft ({draft.size[0]} x {draft.size[1]})": median_ms(
            lambda: imaging.decode(data, draft_size=2 * WORKING_SIZE), repeats
        ),
        "model input from the full decode": median_ms(
            lambda: imaging.to_model_input(full.pixels, WORKING_SIZE), repeats
        ),
        "model input from the draft": median_ms(lambda: imaging.to_model_input(draft.pixels, WORKING_SIZE), repeats),
        "shared part: LabMergeBase (once per photo)": median_ms(lambda: imaging.LabMergeBase(full.pixels), repeats),
        **figures,
        "merge, lookup table (per model)": median_ms(lambda: base.merge(colour), repeats),
        "encode JPEG (q92, in bands) of the merge": median_ms(encoded(merged, "jpeg"), repeats),
        "encode PNG (level 1)": median_ms(encoded(merged, "png"), max(1, repeats // 3)),
        "first table merge of the process (builds the table)": first_merge,
    }


class StandIn(Backend):
    """Answers every model with the same colour result after a fixed delay, like a model server on a GPU."""

    name = "stand-in"

    def __init__(self, colour_png: bytes, seconds: float):
        self.colour_png, self.seconds = colour_png, seconds

    async def reachable(self) -> bool:
        return True

    async def infer(self, model, grey, *, hints, seed, timeout, size=None, reference=None) -> bytes:  # type: ignore[no-untyped-def]
        await asyncio.sleep(self.seconds)
        return self.colour_png


async def end_to_end(data: bytes, repeats: int, model_ms: float) -> dict[str, float]:
    colour = imaging.decode(data, draft_size=2 * WORKING_SIZE).rgb.resize((WORKING_SIZE, WORKING_SIZE))
    backend = StandIn(imaging.encode(colour, "png"), model_ms / 1000)
    catalogue = {
        f"model-{i}": ModelInfo(f"model-{i}", "stand-in", "stand-in", "", WORKING_SIZE, False, False, "untrained")
        for i in range(MODELS)
    }
    with tempfile.TemporaryDirectory(prefix="merge-benchmark-") as folder:
        settings = Settings(result_dir=Path(folder), max_upload_bytes=64 << 20)
        service = ColorizeService(settings, backend, open_store(settings), catalogue)
        upload = [Upload("scan.jpg", data)]
        figures = {}
        for label, model in (("one model", "model-0"), (f"{MODELS} models", "all")):
            await service.colorize(upload, Options(model=model))  # warm-up
            seconds = []
            for _ in range(repeats):
                started = time.perf_counter()
                result = await service.colorize(upload, Options(model=model))
                seconds.append(time.perf_counter() - started)
                assert all(o.status == "ok" and o.media_type == "image/jpeg" for o in result.files[0].outputs)
            figures[f"{label}, JPEG in -> JPEG out"] = statistics.median(seconds) * 1000
        return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", type=Path, help="a JPEG to use instead of the synthetic 12-megapixel scan")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--model-ms", type=float, default=50.0, help="the stand-in model pass")
    args = parser.parse_args()
    photo = args.photo.read_bytes() if args.photo else grainy_scan()
    for kind, data in (("colour", photo), ("greyscale", greyscale(photo))):
        width, height = imaging.decode(data).size
        print(f"{kind}: {width} x {height} JPEG, {len(data) / 2**20:.1f} MiB; median of {args.repeats} runs, ms")
        for label, ms in stages(data, args.repeats).items():
            print(f"  {label:55s} {ms:8.1f}")
        print(f"  end to end in process, stand-in model pass of {args.model_ms:g} ms:")
        for label, ms in asyncio.run(end_to_end(data, args.repeats, args.model_ms)).items():
            print(f"  {label:55s} {ms:8.1f}   (gateway's share {ms - args.model_ms:.1f})")


if __name__ == "__main__":
    main()
