"""Regenerate the web page's example pictures: one sample photo, in grey, through every served model."""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import logging
import sys
import time
from pathlib import Path

from PIL import Image
from skimage import data as samples

from colorizers import imaging
from colorizers.pipeline import Colorizer
from colorizers.registry import list_models
from colorizers.weights import available

OUT_DIR = Path(__file__).resolve().parent / "img" / "examples"
MAX_BYTES = 60_000
CREDITS = {
    "astronaut": "Eileen Collins, NASA (public domain), from scikit-image's sample data",
    "chelsea": "Chelsea the cat, Stefan van der Walt (CC0), from scikit-image's sample data",
    "coffee": "Coffee cup, Rachel Michetti (CC0), from scikit-image's sample data",
}


def sample_photo(name: str, side: int) -> Image.Image:
    """A scikit-image sample photo, its longer side scaled to ``side`` pixels."""
    photo = Image.fromarray(getattr(samples, name)()).convert("RGB")
    scale = side / max(photo.size)
    return photo.resize((round(photo.width * scale), round(photo.height * scale)), Image.Resampling.LANCZOS)


def save_jpeg(image: Image.Image, path: Path) -> int:
    """Write a JPEG under MAX_BYTES (the quality steps down until it fits); returns its size."""
    for quality in range(88, 40, -6):
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, "JPEG", quality=quality, optimize=True, progressive=True)
        if buffer.tell() <= MAX_BYTES:
            break
    path.write_bytes(buffer.getvalue())
    return buffer.tell()


def model_names(weights_dir: Path | None) -> list[str]:
    served = [spec.id for spec in list_models(served_only=True)]
    return served + sorted(name for name in available(weights_dir) if name not in served)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--photo", choices=sorted(CREDITS), default="astronaut", help="scikit-image sample photo")
    parser.add_argument("--side", type=int, default=320, help="longer side of the pictures, in pixels")
    parser.add_argument("--weights-dir", type=Path, help="weights directory (default: model_store/weights)")
    parser.add_argument("--models", nargs="*", help="model names (default: every served model and imported weights)")
    parser.add_argument(
        "--pipeline-model", help="model shown step by step on how-it-works (default: the first with real weights)"
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")

    args.out.mkdir(parents=True, exist_ok=True)
    photo = sample_photo(args.photo, args.side)
    grey = photo.convert("L").convert("RGB")  # what a user uploads: a black-and-white photo
    save_jpeg(photo, args.out / "original.jpg")
    save_jpeg(grey, args.out / "input.jpg")
    manifest: dict = {
        "photo": args.photo,
        "credit": CREDITS[args.photo],
        "width": photo.width,
        "height": photo.height,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "models": {},
    }
    names = args.models or model_names(args.weights_dir)
    with_weights = available(args.weights_dir)
    pipeline_model = args.pipeline_model or next((n for n in names if n in with_weights), "coloria-cnn")
    for name in names:
        colorizer = Colorizer.load(name, args.weights_dir, args.device)
        seed = 1 if colorizer.spec.supports_seed else None
        started = time.perf_counter()
        result = colorizer.colorize(grey, seed=seed)
        seconds = time.perf_counter() - started
        size = save_jpeg(result, args.out / f"{name}.jpg")
        meta = colorizer.meta
        manifest["models"][name] = {
            "provenance": meta.get("provenance", "trained"),
            "steps": meta.get("steps"),
            "recipe": meta.get("recipe"),
            "weights_created": meta.get("created"),
            "seed": seed,
            "seconds": round(seconds, 2),
        }
        print(f"{name}: {meta.get('provenance', 'trained')} weights, {seconds:.1f} s, {size / 1000:.0f} kB")
        if name == pipeline_model:  # the steps of the pipeline, for how-it-works.html
            small_grey = imaging.to_model_input(grey, colorizer.working_size)
            save_jpeg(small_grey, args.out / "pipeline-grey.jpg")
            save_jpeg(colorizer.colorize_working(small_grey, seed=seed), args.out / "pipeline-colour.jpg")
            save_jpeg(result, args.out / "pipeline-result.jpg")
            manifest["pipeline"] = {"model": name, "working_size": colorizer.working_size}
    (args.out / "examples.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
