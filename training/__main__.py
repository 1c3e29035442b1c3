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
    from training.dataset.cli import main
    from training.dataset.photos import PHOTO_LIST

    if args.photo_list is None:
        args.photo_list = PHOTO_LIST
    return main(args)


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
    from training.evaluate.cli import main

    return main(args)


def _add_calibrate(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "calibrate",
        help="fit each compact model's chroma floor and gain (and its own knob) on the held-out-package photos",
        description="Colourise the photos of --images (by default the photos of source packages that training "
        "never saw) and choose the chroma floor and gain (and how much of its class rebalancing a classification "
        "model undoes, or the noise spread of a GAN): the lowest mean CIEDE2000 at least 0.5 %% below grey that keeps "
        "at least half of the truth's colourfulness, else the most colourful 1 %% below grey, else the lowest; "
        "write it into the weights sidecar.",
    )
    parser.add_argument("--models", default="all", metavar="all|ID,...", help="models on the pretrained encoder")
    parser.add_argument("--images", default="data/unseen_photos", metavar="DIR", help="calibration photos")
    parser.add_argument("--weights-dir", default=None, help="weights folder (default: model_store/weights)")
    parser.add_argument("--dry-run", action="store_true", help="print the fit, do not write the sidecars")
    parser.set_defaults(handler=_calibrate)


def _calibrate(args: argparse.Namespace) -> int:
    from training import calibrate

    return calibrate.main(args)


def _add_ensemble(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "ensemble",
        help="join zhang-eccv16 weights of separate trainings into one model, the mixture of their distributions",
        description="Write zhang-eccv16 weights whose classifiers are those of the given trainings (folders with "
        "zhang-eccv16.safetensors and its sidecar), on the one frozen encoder: the model's bin distribution is the "
        "mean of theirs. Calibrate the result afterwards (python -m training calibrate).",
    )
    parser.add_argument("--members", nargs="+", required=True, metavar="DIR", help="weights folders of the trainings")
    parser.add_argument("--out", required=True, help="output folder")
    parser.set_defaults(handler=_ensemble)


def _ensemble(args: argparse.Namespace) -> int:
    from training import ensemble

    return ensemble.main(args)


def _add_build_exemplar(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "build-exemplar",
        help="write the exemplar (colour from a reference photo) weights with an automatic model as its fallback",
        description="Copy a trained automatic compact model's weights into the exemplar model as its fallback "
        "head (used where the reference photo does not match), keep the trained confidence gate if exemplar "
        "weights exist, and write exemplar.safetensors + exemplar.json: the archive is then self-contained.",
    )
    parser.add_argument("--fallback", default="wallner-full", help="automatic model id, or '' for grey")
    parser.add_argument("--weights-dir", default=None, help="weights folder (default: model_store/weights)")
    parser.add_argument("--out", default=None, help="output folder (default: the weights folder)")
    parser.set_defaults(handler=_build_exemplar)


def _build_exemplar(args: argparse.Namespace) -> int:
    from training import exemplar

    return exemplar.main_build(args)


def _add_exemplar_eval(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "exemplar-eval",
        help="mean CIEDE2000 of the exemplar model with same-scene and unrelated references, and its speed",
        description="For each colour photo of --images: a reference made from another view of it (crop, scale, "
        "mirror) and the next photo as an unrelated reference; mean CIEDE2000 against grey and the automatic "
        "fallback; speed at 256 px and 12 MP. Writes report.json and grid.png into --out; exit 1 when a target "
        "(same scene <= half of grey, unrelated no worse than the fallback) is missed.",
    )
    parser.add_argument("--images", default="data/val_photos", metavar="DIR", help="folder of colour photos")
    parser.add_argument("--out", default="runs/exemplar", metavar="DIR", help="report folder")
    parser.add_argument("--weights-dir", default=None, help="weights folder (default: model_store/weights)")
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N photos")
    parser.add_argument("--no-timing", action="store_true", help="skip the 256 px and 12 MP timings")
    parser.set_defaults(handler=_exemplar_eval)


def _exemplar_eval(args: argparse.Namespace) -> int:
    from training import exemplar

    return exemplar.main_eval(args)


def _add_train(commands: argparse._SubParsersAction) -> None:
    from training import train_cli  # light: torch is imported only when the command runs

    parser = commands.add_parser("train", help="train one model with its recipe", description=train_cli.DESCRIPTION)
    train_cli.add_arguments(parser)


def _add_package(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "package",
        help="build versioned TorchServe archives (.mar) from weights + sidecar",
        description="Build MODEL_STORE/<name>.mar for one model, or for every weights file with 'all'; "
        "optionally register the new version with a running TorchServe.",
    )
    parser.add_argument("name", metavar="MODEL|all", help="served model name (weights file stem) or 'all'")
    parser.add_argument("--weights-dir", default=None, help="weights folder (default: model_store/weights)")
    parser.add_argument("--model-store", default=None, help="where archives go (default: model_store/)")
    parser.add_argument("--device-type", choices=("cpu", "gpu"), default=None, help="model-config deviceType")
    parser.add_argument("--batch-size", type=int, default=None, help="model-config batchSize (default 1)")
    parser.add_argument("--workers", type=int, default=None, help="model-config min/max workers (default 1)")
    parser.add_argument(
        "--register",
        default=os.environ.get("TRAINING_TORCHSERVE_MANAGEMENT_URL"),
        metavar="URL",
        help="TorchServe management URL to register the built versions with (default: "
        "$TRAINING_TORCHSERVE_MANAGEMENT_URL; none = build only)",
    )
    parser.set_defaults(handler=_package)


def _package(args: argparse.Namespace) -> int:
    from training import package

    return package.main(args)


def _add_import_weights(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "import-weights",
        help="turn a published checkpoint into an '-x' model (weights + sidecar + archive)",
        description="Read a published .pth as its authors saved it, without unpickling code (torch.load "
        "weights_only=True; a plain, {'model': ...}- or {'state_dict': ...}-wrapped state_dict; BatchNorm counters "
        "and 'module.' prefixes are handled), load it strictly into the full configuration of --family, and write "
        "<family>-x weights (float32), a sidecar whose 'conventions' say how the authors feed and decode them, and "
        "an archive. See docs/models.md, 'Importing the published checkpoints'.",
    )
    parser.add_argument("checkpoint", help="the published .pth file")
    parser.add_argument(
        "--family",
        required=True,
        choices=("zhang-eccv16", "zhang-siggraph17", "deoldify-artistic", "deoldify-stable"),
        help="which published model the checkpoint is",
    )
    parser.add_argument("--weights-dir", default=None, help="weights folder (default: model_store/weights)")
    parser.add_argument("--model-store", default=None, help="where the archive goes (default: model_store/)")
    parser.add_argument(
        "--fp16",
        action="store_true",
        help="store float16 if a check of the outputs (recorded in the sidecar) shows it harmless (default: float32)",
    )
    parser.add_argument("--fp32", action="store_true", help=argparse.SUPPRESS)  # the default now; kept for scripts
    parser.add_argument("--no-archive", action="store_true", help="only weights + sidecar")
    parser.set_defaults(handler=_import_weights)


def _import_weights(args: argparse.Namespace) -> int:
    from training import package

    return package.import_main(args)


def _add_serve(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "serve",
        help="the training HTTP API: start jobs, follow progress and metrics, list artifacts (port 8090)",
        description="Training jobs over HTTP (OpenAPI at /docs): each job runs `python -m training train` in its "
        "own process group, queued behind TRAINING_MAX_CONCURRENT_JOBS; a finished job's weights go to "
        "MODEL_STORE/weights, its archive to MODEL_STORE, and the archive is registered with TorchServe when "
        "TRAINING_TORCHSERVE_MANAGEMENT_URL is set. Settings come from TRAINING_* environment variables.",
    )
    parser.add_argument("--host", default=None, help="listen address (default: $TRAINING_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="listen port (default: $TRAINING_PORT or 8090)")
    parser.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    from training.service.api import main

    return main(args)


SUBCOMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (
    _add_dataset,
    _add_evaluate,
    _add_calibrate,
    _add_ensemble,
    _add_train,
    _add_package,
    _add_import_weights,
    _add_build_exemplar,
    _add_exemplar_eval,
    _add_serve,
)


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
