"""Command line of the training service: ``python -m training COMMAND [options]``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

# A subcommand is one ``_add_<name>(commands)`` function that calls ``commands.add_parser`` and sets
# ``handler`` (a function that imports its module lazily, so ``--help`` stays fast), plus one entry in SUBCOMMANDS.


def _add_dataset(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "dataset",
        help="download the listed packages, extract the photos, write crops, split and manifest",
        description="Build the training dataset from the photo list: packages are downloaded once into the "
        "cache, photos extracted into DATA_DIR/photos/, 256x256 crops written to DATA_DIR/crops/{train,val}/, "
        "validation photos to DATA_DIR/val_photos/, and everything recorded in DATA_DIR/manifest.json. "
        "Running it again only does what is missing.",
    )
    parser.add_argument(
        "--data-dir",
        default=os.environ.get("TRAINING_DATA_DIR", "data"),
        help="output folder (default: $TRAINING_DATA_DIR or data/)",
    )
    parser.add_argument("--cache-dir", default=None, help="downloaded and unpacked packages (default: DATA_DIR/cache)")
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N photos of the list")
    parser.add_argument("--packages", default=None, metavar="NAME,...", help="only photos from these packages")
    parser.add_argument(
        "--skip-large", action="store_true", help="skip enlightenment-data and tuxpaint-stamps-default (~560 MB)"
    )
    parser.add_argument("--seed", type=int, default=0, help="crop positions (default: 0)")
    parser.add_argument(
        "--val-fraction", type=float, default=0.1, help="share of photos held out for validation (default: 0.1)"
    )
    parser.add_argument(
        "--crop-format", choices=("png", "jpg"), default="png", help="crop files: png (lossless, default) or jpg q95"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=min(4, os.cpu_count() or 1),
        help="processes cutting crops (default: CPU count, at most 4)",
    )
    parser.add_argument("--photo-list", default=None, help="CSV photo list (default: the one shipped with training)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(handler=_dataset)


def _dataset(args: argparse.Namespace) -> int:
    from training import dataset

    if args.photo_list is None:
        args.photo_list = dataset.PHOTO_LIST
    return dataset.main(args)


def _add_evaluate(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "evaluate",
        help="score every model on the same colour photos (CIEDE2000, PSNR, colourfulness, latency)",
        description="Each model colourises the greyscale of the photos in --images; the outputs are scored "
        "against the photos (mean CIEDE2000, PSNR, colourfulness and its gap to the truth, latency) next to a "
        "grey-output baseline. Writes report.json, report.md, grid.png and delta_e00.png into --out.",
    )
    parser.add_argument("--images", required=True, metavar="DIR", help="folder of colour photos (ground truth)")
    parser.add_argument(
        "--models",
        default="all",
        metavar="all|ID,...",
        help="'all' (served models with weights, plus imported -x models) or a comma-separated list",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="report folder")
    parser.add_argument(
        "--weights-dir", default=None, help="weights folder (default: $COLORIZERS_WEIGHTS_DIR or model_store/weights)"
    )
    parser.add_argument("--size", type=int, default=None, metavar="N", help="working size for every model")
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N photos (by name)")
    parser.add_argument(
        "--allow-untrained", action="store_true", help="score models without weights as untrained compact models"
    )
    parser.add_argument("--docs", default=None, metavar="PATH", help="also write this docs page (docs/evaluation.md)")
    parser.set_defaults(handler=_evaluate)


def _evaluate(args: argparse.Namespace) -> int:
    from training import evaluate

    return evaluate.main(args)


def _add_train(commands: argparse._SubParsersAction) -> None:
    from training import train_cli  # light: torch is imported only when the command runs

    parser = commands.add_parser("train", help="train one model with its recipe", description=train_cli.DESCRIPTION)
    train_cli.add_arguments(parser)


SUBCOMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (_add_dataset, _add_evaluate, _add_train)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
