"""`colorize IN... --model ID|all -o OUTDIR`: colourise photos from the command line."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from tqdm import tqdm

from colorizers import imaging
from colorizers.pipeline import Colorizer, RequestError, check_reference_image, decode_reference, parse_hints
from colorizers.registry import list_models
from colorizers.weights import available


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="colorize", description="Colourise black-and-white photos.")
    parser.add_argument("inputs", nargs="+", type=Path, help="image files (JPEG, PNG, WebP, TIFF, BMP, GIF)")
    parser.add_argument("--model", "-m", default="all", help="model id, or 'all' for every served model")
    parser.add_argument("--output", "-o", type=Path, required=True, help="output directory")
    parser.add_argument("--size", type=int, help="working resolution of the model pass (default: the model's)")
    parser.add_argument("--hints", help='JSON colour points, e.g. \'[{"x":0.5,"y":0.3,"color":"#3366cc"}]\'')
    parser.add_argument("--seed", type=int, help="seed for models with diverse outputs")
    parser.add_argument(
        "--reference",
        type=Path,
        metavar="FILE",
        help="a colour photo of the same scene or person, for models that take one (exemplar)",
    )
    parser.add_argument("--format", choices=sorted(imaging.MEDIA_TYPES), default="png")
    parser.add_argument("--weights-dir", type=Path, help="weights directory (default: model_store/weights)")
    parser.add_argument("--device", help="auto, cpu, cuda or cuda:N (default: COLORIZERS_DEVICE or auto)")
    return parser


def _model_names(choice: str, weights_dir: Path | None) -> list[str]:
    if choice != "all":
        return [choice]
    served = [spec.id for spec in list_models(served_only=True)]
    extra = sorted(name for name in available(weights_dir) if name not in served)
    return served + extra


def _with_reference(colorizers: list[Colorizer], reference: object, *, every: bool) -> list[Colorizer]:
    """The models to run given the reference: with ``all``, the reference goes to the models that take one and
    the models that need one are skipped without it; a single model must fit the reference (or its absence)."""
    if every:
        skipped = [c.name for c in colorizers if c.spec.needs_reference and reference is None]
        if skipped:
            print(f"colorize: skipping {', '.join(skipped)} (needs --reference)", file=sys.stderr)
        return [c for c in colorizers if c.name not in skipped]
    for colorizer in colorizers:
        colorizer.require_reference(reference is not None)
        if reference is not None and not colorizer.spec.supports_reference:
            raise RequestError(f"model {colorizer.name} does not take a reference photo")
    return colorizers


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        hints = parse_hints(args.hints)
        reference = decode_reference(args.reference.read_bytes()) if args.reference else None
        if reference is not None:
            check_reference_image(reference)
        names = _model_names(args.model, args.weights_dir)
        colorizers = [Colorizer.load(name, args.weights_dir, args.device) for name in names]
        colorizers = _with_reference(colorizers, reference, every=args.model == "all")
        for colorizer in colorizers:
            colorizer.check_options(
                hints if colorizer.spec.supports_hints else (),
                args.seed if colorizer.spec.supports_seed else None,
                args.size,
            )
    except (KeyError, RequestError, RuntimeError, OSError, imaging.ImageError) as exc:
        print(f"colorize: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 2
    args.output.mkdir(parents=True, exist_ok=True)
    failures = 0
    jobs = [(path, c) for path in args.inputs for c in colorizers]
    decoded_cache: dict[Path, imaging.DecodedImage] = {}
    for path, colorizer in tqdm(jobs, desc="colourising", unit="image", disable=len(jobs) < 3, file=sys.stderr):
        try:
            if path not in decoded_cache:
                decoded_cache = {path: imaging.decode(path.read_bytes())}
            decoded = decoded_cache[path]
            result = colorizer.colorize(
                decoded.pixels,
                hints=hints if colorizer.spec.supports_hints else (),
                seed=args.seed if colorizer.spec.supports_seed else None,
                size=args.size,
                reference=reference if colorizer.spec.supports_reference else None,
            )
            out = args.output / f"{path.stem}.{colorizer.name}.{args.format}"
            out.write_bytes(imaging.encode(result, args.format, alpha=decoded.alpha))
        except (OSError, imaging.ImageError) as exc:
            failures += 1
            tqdm.write(f"colorize: {path}: {exc}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
