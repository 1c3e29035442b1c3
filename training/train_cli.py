"""The ``train`` subcommand: ``python -m training train --model ID (--minutes M | --steps N) [options]``."""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

# Heavy imports (torch, the models) happen in run(), so building the parser stays fast.

DESCRIPTION = (
    "Train one catalogue model with its recipe (training/recipes/) for a number of minutes or steps. "
    "Checkpoints, TensorBoard logs and progress.json go to RUN_DIR/MODEL/; at the end the EMA weights and "
    "their sidecar are written to OUT (float16 unless that changes the validation CIEDE2000 by more than 0.1). "
    "Under torchrun every process trains one replica (DistributedDataParallel; gloo on CPU, nccl on CUDA). "
    "The device is chosen by COLORIZERS_DEVICE (auto, cpu, cuda, cuda:N)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="catalogue id, e.g. wallner-beta, zhang-eccv16, bigcolor")
    parser.add_argument("--variant", default="compact", help="model size: tiny, compact (default) or full")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=float, default=None, help="train for this many minutes (wall clock)")
    budget.add_argument("--steps", type=int, default=None, help="train for this many optimisation steps")
    parser.add_argument("--batch-size", type=int, default=None, help="per process (default: the recipe's)")
    parser.add_argument("--lr", type=float, default=None, help="main learning rate (default: the recipe's)")
    parser.add_argument(
        "--image-size", type=int, default=None, help="side of the pictures (default: the model's working size)"
    )
    parser.add_argument(
        "--crop",
        type=int,
        default=None,
        help="train on random squares of this side (0: whole pictures; default: the recipe's, 128 on CPU)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("TRAINING_DATA_DIR", "data")),
        help="data set from `python -m training dataset` (default: $TRAINING_DATA_DIR or data/)",
    )
    parser.add_argument(
        "--synthetic", type=int, default=None, metavar="N", help="train on N generated pictures instead (smoke runs)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="weights directory (default: $COLORIZERS_WEIGHTS_DIR or model_store/weights)",
    )
    parser.add_argument(
        "--run-dir",
        type=Path,
        default=Path(os.environ.get("TRAINING_RUNS_DIR", "runs")),
        help="checkpoints and logs go to RUN_DIR/MODEL/ (default: $TRAINING_RUNS_DIR or runs/)",
    )
    parser.add_argument("--resume", action="store_true", help="continue from RUN_DIR/MODEL/checkpoint.pt")
    parser.add_argument(
        "--init",
        default=None,
        metavar="NAME",
        help="start from these weights in OUT (fine-tuning; default: NAME = --model when given without a value)",
        nargs="?",
        const="",
    )
    parser.add_argument("--seed", type=int, default=0, help="weights, data order, augmentation (default: 0)")
    parser.add_argument("--workers", type=int, default=None, help="data loader processes (default: by CPU count)")
    parser.add_argument("--val-samples", type=int, default=16, help="validation pictures (default: 16)")
    parser.add_argument(
        "--val-interval", type=float, default=0.1, help="validate every this fraction of the budget (default: 0.1)"
    )
    parser.add_argument("--checkpoint-minutes", type=float, default=5.0, help="checkpoint period (default: 5)")
    parser.add_argument("--ema-decay", type=float, default=None, help="default: the recipe's (0.999 mostly)")
    parser.add_argument("--fp32", action="store_true", help="store float32 weights even when float16 would do")
    parser.add_argument("--no-amp", action="store_true", help="no mixed precision on CUDA")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--param-digest", action="store_true", help=argparse.SUPPRESS)
    parser.set_defaults(handler=run)


def config_from_args(args: argparse.Namespace):  # -> TrainConfig (imported lazily)
    from training.train_config import TrainConfig

    return TrainConfig(
        model=args.model,
        variant=args.variant,
        steps=args.steps,
        minutes=args.minutes,
        batch_size=args.batch_size,
        lr=args.lr,
        image_size=args.image_size,
        crop=args.crop,
        data_dir=args.data_dir,
        synthetic=args.synthetic,
        out=args.out,
        run_dir=args.run_dir,
        resume=args.resume,
        init=(args.init or args.model) if args.init is not None else None,
        seed=args.seed,
        workers=args.workers,
        val_samples=args.val_samples,
        val_interval=args.val_interval,
        checkpoint_minutes=args.checkpoint_minutes,
        ema_decay=args.ema_decay,
        amp=False if args.no_amp else None,
        half=False if args.fp32 else None,
        progress_bar=not args.no_progress,
        param_digest=args.param_digest,
    )


def run(args: argparse.Namespace) -> int:
    """Train; prints one JSON line with the result (status, weights, steps, seconds, metrics). Exit 0 when done."""
    if args.steps is None and args.minutes is None and not args.resume:
        raise SystemExit("train: give a budget, --minutes M or --steps N")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from training.trainer import train

    result = train(config_from_args(args))
    if int(os.environ.get("RANK", "0")) == 0:
        print(
            json.dumps(
                {
                    "status": result.status,
                    "weights": None if result.weights is None else str(result.weights),
                    "run_dir": str(result.run_dir),
                    "steps": result.steps,
                    "seconds": round(result.seconds, 1),
                    "metrics": result.metrics,
                }
            ),
            flush=True,
        )
    return 0 if result.status == "finished" else 3
