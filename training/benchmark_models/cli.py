"""``python -m training.benchmark_models``: options, the run, the JSON report and the tables it writes and prints."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from training.benchmark_models.counting import DEFAULT_SIZE
from training.benchmark_models.report import run
from training.benchmark_models.tables import markdown, text_report

DEFAULT_OUT = Path("docs/benchmarks/models.json")
# 12 megapixels (4:3, a common camera size) and about 1 megapixel: the model pass must cost the same for both.
DEFAULT_PHOTOS = "4000x3000,1152x864"


def parse_photo_sizes(text: str) -> list[tuple[int, int]]:
    """``"4000x3000,1152x864"`` -> [(4000, 3000), (1152, 864)]."""
    sizes = []
    for part in text.split(","):
        if not part.strip():
            continue
        try:
            width, height = (int(v) for v in part.lower().split("x"))
        except ValueError:
            raise argparse.ArgumentTypeError(f"photo size must look like 4000x3000, got {part!r}") from None
        if width <= 0 or height <= 0:
            raise argparse.ArgumentTypeError(f"photo size must be positive, got {part!r}")
        sizes.append((width, height))
    return sizes


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training.benchmark_models",
        description="Parameters, fp16 size and MACs of every model variant; CPU latency of the served variant; "
        "the time split of a 12-megapixel and a 1-megapixel photo through the inference path.",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: every CPU available)")
    parser.add_argument(
        "--repeats",
        type=int,
        default=20,
        help="timed runs of each model pass, at SIZE and in the photo split (default: 20; 0 skips all timing)",
    )
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs before timing (default: 3)")
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE, help="square input for MACs and latency (256)")
    parser.add_argument("--variant", default="compact", help="variant timed (default: compact, the served one)")
    parser.add_argument("--models", default=None, help="comma-separated model ids (default: every registered model)")
    parser.add_argument(
        "--photos",
        type=parse_photo_sizes,
        default=DEFAULT_PHOTOS,  # a string default goes through ``type`` too: a list of sizes either way
        help=f"photo sizes (default: {DEFAULT_PHOTOS})",
    )
    parser.add_argument(
        "--photo-repeats",
        type=int,
        default=5,
        help="timed runs of each image stage (decode, resize, merge, encode) per photo (default: 5; 0 skips photos)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON report (default: {DEFAULT_OUT})")
    parser.add_argument(
        "--markdown", action="store_true", help="also write the markdown tables next to the JSON (.md) and print them"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; the JSON goes to --out, progress to stderr, the summary (and tables) to stdout."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # the report's reproduce command
    args.models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    report = run(args, log)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(text_report(report))
    print(f"\nwrote {args.out}")
    if args.markdown:
        tables = markdown(report)
        md_path = args.out.with_suffix(".md")
        md_path.write_text(tables)
        print("\n" + tables)
        print(f"wrote {md_path}")
    return 0
