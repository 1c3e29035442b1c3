"""``python -m training evaluate``: an evaluation from the command line's options; progress goes to stderr."""

from __future__ import annotations

import sys
from typing import Any

from training.evaluate.inputs import EvaluationError
from training.evaluate.report import run


def main(args: Any) -> int:
    """Entry point of ``python -m training evaluate``; returns the exit status (2 when it cannot run as asked)."""
    try:
        run(
            args.images,
            args.out,
            args.models,
            weights_dir=args.weights_dir,
            size=args.size,
            limit=args.limit,
            allow_untrained=args.allow_untrained,
            docs=args.docs,
            progress=lambda message: print(message, file=sys.stderr, flush=True),
        )
    except EvaluationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
