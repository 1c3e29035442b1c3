"""Model benchmark: size and MACs of every variant, CPU latency of the served variant, and the photo time split."""

from __future__ import annotations

import argparse
import datetime as _dt
import io
import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import PIL
import torch
from PIL import Image
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from colorizers import imaging, weights
from colorizers.pipeline import Colorizer
from colorizers.registry import ModelSpec, create_model, list_models

DEFAULT_OUT = Path("docs/benchmarks/models.json")
DEFAULT_SIZE = 256
# 12 megapixels (4:3, a common camera size) and about 1 megapixel: the model pass must cost the same for both.
DEFAULT_PHOTOS = "4000x3000,1152x864"
PHOTO_JPEG_QUALITY = 90
MB = 1_000_000

# Tensors that weights.save keeps in float32 inside an fp16 file (spectral-norm vectors, BatchNorm statistics).
_FP32_SUFFIXES = ("running_var", "running_mean", "weight_u", "weight_v")


# --------------------------------------------------------------------------------------------------------------
# Counting: parameters, fp16 bytes, MACs
# --------------------------------------------------------------------------------------------------------------


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def fp16_bytes(model: nn.Module) -> int:
    """Bytes of the state_dict as ``colorizers.weights.save`` writes it (fp16 floats, a few fp32 buffers)."""
    total = 0
    for key, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not key.endswith(_FP32_SUFFIXES):
            total += tensor.numel() * 2
        else:
            total += tensor.numel() * tensor.element_size()
    return total


def count_macs(model: nn.Module, size: int = DEFAULT_SIZE) -> int:
    """Multiply-accumulates of one ``predict_ab`` on a (1, 1, size, size) L tensor (FLOPs / 2).

    Counted by ``torch.utils.flop_counter.FlopCounterMode``: convolutions, matrix products and attention;
    element-wise work (activations, normalisation, colour conversion) is not counted. Works on the meta device.
    """
    device = next(model.parameters()).device
    l = torch.full((1, 1, size, size), 50.0, device=device)  # mid-grey L
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model.predict_ab(l)
    return counter.get_total_flops() // 2


def _build(model_id: str, variant: str, device: str) -> nn.Module:
    with torch.device(device):
        model = create_model(model_id, variant)
    return model.eval()


def variant_stats(spec: ModelSpec, variant: str, size: int = DEFAULT_SIZE) -> dict[str, Any]:
    """Parameters, fp16 size and MACs (at ``size`` and at the working size) of one variant, built on meta."""
    try:
        model = _build(spec.id, variant, "meta")
        macs = count_macs(model, size)
        device = "meta"
    except (NotImplementedError, RuntimeError):  # an operator without a meta kernel: count on real memory
        model = _build(spec.id, variant, "cpu")
        macs = count_macs(model, size)
        device = "cpu"
    stats: dict[str, Any] = {
        "parameters": parameter_count(model),
        "fp16_bytes": fp16_bytes(model),
        "size": size,
        "macs": macs,
        "counted_on": device,
    }
    if spec.working_size != size:
        stats["macs_working_size"] = count_macs(model, spec.working_size)
    return stats


# --------------------------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------------------------


def time_calls(fn: Callable[[], Any], repeats: int, warmup: int = 0) -> list[float]:
    """Wall-clock seconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def summarise(samples: Sequence[float]) -> dict[str, Any]:
    """Median, p95 and min in milliseconds (p95 interpolated linearly between runs)."""
    ms = np.asarray(samples, dtype=np.float64) * 1000.0
    return {
        "median_ms": round(float(np.median(ms)), 2),
        "p95_ms": round(float(np.percentile(ms, 95)), 2),
        "min_ms": round(float(ms.min()), 2),
        "runs": len(ms),
    }


# --------------------------------------------------------------------------------------------------------------
# Test photo
# --------------------------------------------------------------------------------------------------------------


def _smooth_noise(rng: np.random.Generator, width: int, height: int, cells: int) -> np.ndarray:
    """Value noise: a random grid ``cells`` high upsampled bicubically to (height, width), float32 about N(0, 1)."""
    grid_w, grid_h = max(2, cells * width // max(height, 1)), max(2, cells)
    grid = rng.standard_normal((grid_h, grid_w), dtype=np.float32)
    resized = Image.fromarray(grid, "F").resize((width, height), Image.Resampling.BICUBIC)
    return np.asarray(resized)  # (height, width)


def synthetic_photo(width: int, height: int, seed: int = 0) -> Image.Image:
    """A deterministic outdoor-like photo: sky and ground, sharp-edged objects, 1/f texture and sensor grain.

    The scene is drawn at a quarter of the size and upsampled, then full-resolution detail and grain are
    added, so its JPEG compresses like a camera photo (a few megabytes at 12 megapixels and q90) and decoding
    and encoding cost what they cost on real uploads.
    """
    rng = np.random.default_rng(seed)
    w, h = max(8, width // 4), max(8, height // 4)
    yy = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None]  # (h, 1)
    xx = np.linspace(0.0, width / height, w, dtype=np.float32)[None, :]  # (1, w), same units as yy
    horizon = 0.55 + 0.04 * _smooth_noise(rng, w, h, 2)[:1]  # (1, w), rolling hills
    ground = 0.5 + 0.5 * np.tanh((yy - horizon) * 200.0)  # (h, w): 0 in the sky, 1 on the ground
    sky = np.array([0.42, 0.60, 0.86], np.float32)
    land = np.array([0.36, 0.42, 0.22], np.float32)
    rgb = (sky * (1.0 - 0.4 * yy)[..., None]) * (1.0 - ground)[..., None]  # (h, w, 3)
    rgb += (land * (0.7 + 0.5 * yy)[..., None]) * ground[..., None]
    rgb += 0.03 * np.stack([_smooth_noise(rng, w, h, 3) for _ in range(3)], axis=-1)  # slow colour drift
    for _ in range(12):  # objects: ellipses with a one-pixel soft edge and their own shading
        cx, cy = rng.uniform(0.0, width / height), rng.uniform(0.45, 1.0)
        rx, ry = rng.uniform(0.02, 0.15, 2)
        dist = np.sqrt(((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2)  # (h, w), 1 on the outline
        inside = np.clip((1.0 - dist) * min(rx, ry) * h + 0.5, 0.0, 1.0)[..., None]  # (h, w, 1)
        colour = rng.uniform(0.05, 0.95, 3).astype(np.float32) * (1.1 - 0.3 * np.clip(dist, 0, 1))[..., None]
        rgb += inside * (colour - rgb)
    texture = sum(_smooth_noise(rng, w, h, cells) * cells**-0.35 for cells in (8, 32, 128, h // 2))  # (h, w)
    rgb *= (1.0 + 0.35 * texture)[..., None]
    small = Image.fromarray(np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8), "RGB")
    full = np.asarray(small.resize((width, height), Image.Resampling.BICUBIC), dtype=np.float32)  # (H, W, 3)
    grain = rng.standard_normal((height, width), dtype=np.float32) * 3.0  # (H, W) luminance grain
    full = full + grain[..., None]  # (H, W, 3)
    return Image.fromarray(np.clip(full + 0.5, 0, 255).astype(np.uint8), "RGB")


def jpeg_bytes(image: Image.Image, quality: int = PHOTO_JPEG_QUALITY) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


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


# --------------------------------------------------------------------------------------------------------------
# Benchmarks
# --------------------------------------------------------------------------------------------------------------


def load_colorizer(model_id: str, variant: str) -> tuple[Colorizer, str]:
    """The served model on the CPU: trained weights when the store has them, else an untrained ``variant``."""
    found = weights.available().get(model_id)
    if found is not None:
        return Colorizer.load(model_id, device="cpu"), f"{found.get('provenance', 'trained')} ({found.get('variant')})"
    return Colorizer(create_model(model_id, variant), device="cpu"), f"untrained ({variant})"


def latency(colorizer: Colorizer, size: int, repeats: int, warmup: int) -> dict[str, Any]:
    """``predict_ab`` on a (1, 1, size, size) L tensor taken from a photo, under inference mode."""
    grey = imaging.to_model_input(synthetic_photo(size * 4 // 3, size, seed=1), size)
    l = torch.from_numpy(imaging.lightness(grey))[None, None]  # (H, W) -> (1, 1, H, W)
    model = colorizer.model

    def run() -> None:
        with torch.inference_mode():
            model.predict_ab(l)

    return summarise(time_calls(run, repeats, warmup))


def photo_split(
    width: int,
    height: int,
    colorizers: dict[str, Colorizer],
    repeats: int,
    model_repeats: int,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Time every stage of the inference path for one photo of ``width`` x ``height`` (JPEG q90 in memory).

    Stages that do not depend on the model (decode, resize to each working size, chroma merge, encodes) are
    timed ``repeats`` times, once for all models; the model pass (``colorize_working`` on the working-size
    grey: lightness, ``predict_ab``, Lab to RGB) ``model_repeats`` times for each model.
    """
    data = jpeg_bytes(synthetic_photo(width, height))
    log(
        f"  photo {width}x{height} ({width * height / 1e6:.1f} MP, JPEG q{PHOTO_JPEG_QUALITY}: {len(data) / MB:.1f} MB)"
    )
    rgb = imaging.decode(data).rgb
    stages: dict[str, Any] = {"decode": summarise(time_calls(lambda: imaging.decode(data), repeats))}
    greys: dict[int, Image.Image] = {}
    resize: dict[str, Any] = {}
    for size in sorted({c.working_size for c in colorizers.values()}, reverse=True):
        greys[size] = imaging.to_model_input(rgb, size)
        resize[str(size)] = summarise(time_calls(lambda size=size: imaging.to_model_input(rgb, size), repeats))
    stages["to_model_input"] = resize

    model_pass: dict[str, Any] = {}
    colour_small = None
    for model_id, colorizer in colorizers.items():
        grey = greys[colorizer.working_size]
        colour = colorizer.colorize_working(grey)  # warm-up, and the image merged below
        if colour_small is None or colour.size[0] > colour_small.size[0]:
            colour_small = colour
        model_pass[model_id] = summarise(time_calls(lambda c=colorizer, g=grey: c.colorize_working(g), model_repeats))
    assert colour_small is not None

    merged = imaging.merge_chroma(rgb, colour_small)
    stages["merge_chroma"] = summarise(time_calls(lambda: imaging.merge_chroma(rgb, colour_small), repeats))
    for fmt in ("jpeg", "png"):
        stages[f"encode_{fmt}"] = {
            **summarise(time_calls(lambda fmt=fmt: imaging.encode(merged, fmt), repeats)),
            "bytes": len(imaging.encode(merged, fmt)),
        }

    totals = {}
    for model_id, colorizer in colorizers.items():
        common = (
            stages["decode"]["median_ms"]
            + resize[str(colorizer.working_size)]["median_ms"]
            + model_pass[model_id]["median_ms"]
            + stages["merge_chroma"]["median_ms"]
        )
        totals[model_id] = {
            f"{fmt}_ms": round(common + stages[f"encode_{fmt}"]["median_ms"], 2) for fmt in ("jpeg", "png")
        }
    return {
        "width": width,
        "height": height,
        "megapixels": round(width * height / 1e6, 2),
        "jpeg_quality": PHOTO_JPEG_QUALITY,
        "input_bytes": len(data),
        "stages": stages,
        "model_pass": model_pass,
        "totals_median_ms": totals,
    }


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "cpus_available": _available_cpus(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "pillow": PIL.__version__,
    }
    if hasattr(os, "getloadavg"):
        info["load_average_start"] = [round(v, 2) for v in os.getloadavg()]
    return info


def _available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def run(args: argparse.Namespace, log: Callable[[str], None] = print) -> dict[str, Any]:
    """The whole benchmark as a JSON-ready dict."""
    threads = args.threads or _available_cpus()
    torch.set_num_threads(threads)
    specs = [s for s in list_models() if not args.models or s.id in args.models]
    unknown = set(args.models or ()) - {s.id for s in specs}
    if unknown:
        raise SystemExit(f"unknown models: {', '.join(sorted(unknown))}")
    report: dict[str, Any] = {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": "python -m training.benchmark_models " + shlex.join(args.argv),
        "machine": machine_info(),
        "settings": {
            "threads": torch.get_num_threads(),
            "interop_threads": torch.get_num_interop_threads(),
            "size": args.size,
            "latency_variant": args.variant,
            "repeats": args.repeats,
            "warmup": args.warmup,
            "photo_repeats": args.photo_repeats,
            "device": "cpu",
        },
        "models": [],
        "photos": [],
    }
    colorizers: dict[str, Colorizer] = {}
    for spec in specs:
        log(f"{spec.id}: counting {', '.join(spec.variants)}")
        entry: dict[str, Any] = {
            "id": spec.id,
            "family": spec.family,
            "served": spec.served,
            "working_size": spec.working_size,
            "paper": spec.paper,
            "published_checkpoint": spec.published_checkpoint,
            "variants": {v: variant_stats(spec, v, args.size) for v in spec.variants},
        }
        if args.repeats > 0 and args.variant in spec.variants:
            colorizer, provenance = load_colorizer(spec.id, args.variant)
            entry["latency"] = {"weights": provenance, **latency(colorizer, args.size, args.repeats, args.warmup)}
            log(f"{spec.id}: {args.size}x{args.size} median {entry['latency']['median_ms']:.1f} ms")
            colorizers[spec.id] = colorizer
        report["models"].append(entry)
    if colorizers and args.photo_repeats > 0:
        for width, height in args.photos:
            split = photo_split(width, height, colorizers, args.photo_repeats, max(1, args.repeats), log)
            report["photos"].append(split)
    if hasattr(os, "getloadavg"):
        report["machine"]["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
    return report


# --------------------------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------------------------


def _millions(n: int) -> str:
    return f"{n / 1e6:.2f} M" if n >= 100_000 else f"{n / 1e3:.1f} k"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|",
    ]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _ms(stat: dict[str, Any]) -> str:
    return f"{stat['median_ms']:.0f}" if stat["median_ms"] >= 100 else f"{stat['median_ms']:.1f}"


def markdown(report: dict[str, Any], include_tiny: bool = False) -> str:
    """The report as markdown tables (tiny variants left out unless asked)."""
    settings, machine = report["settings"], report["machine"]
    size = settings["size"]
    out = [
        f"Measured {report['created']} on {machine['cpu']} ({machine['cpus_available']} CPUs available), "
        f"torch {machine['torch']}, {settings['threads']} torch thread{'' if settings['threads'] == 1 else 's'}, "
        f"load average {machine.get('load_average_start', ['?'])[0]}; `{report['command']}`.",
        "",
        f"### Size and compute ({size}x{size})",
        "",
    ]
    rows = []
    for model in report["models"]:
        for variant, stats in model["variants"].items():
            if variant == "tiny" and not include_tiny:
                continue
            rows.append(
                [
                    f"`{model['id']}`",
                    variant,
                    f"{stats['parameters']:,}",
                    f"{stats['macs'] / 1e9:.2f}",
                    f"{stats['fp16_bytes'] / MB:.1f}",
                ]
            )
    out += _table(["model", "variant", "parameters", f"GMACs at {size}", "fp16 weights (MB)"], rows)
    timed = [m for m in report["models"] if "latency" in m]
    if timed:
        out += ["", f"### CPU latency, {settings['latency_variant']} variant, {size}x{size}", ""]
        rows = [
            [
                f"`{m['id']}`",
                "yes" if m["served"] else "no",
                f"{m['latency']['median_ms']:.1f}",
                f"{m['latency']['p95_ms']:.1f}",
                f"{m['latency']['min_ms']:.1f}",
                f"{m['variants'][settings['latency_variant']]['macs'] / 1e9:.2f}",
            ]
            for m in timed
        ]
        out += _table(["model", "served", "median ms", "p95 ms", "best ms", "GMACs"], rows)
    if report["photos"]:
        sizes = sorted({int(k) for p in report["photos"] for k in p["stages"]["to_model_input"]}, reverse=True)
        out += ["", "### Photo time split: stages that do not depend on the model (median ms)", ""]
        rows = []
        for photo in report["photos"]:
            stages = photo["stages"]
            rows.append(
                [
                    f"{photo['width']}x{photo['height']} ({photo['megapixels']:.1f} MP)",
                    _ms(stages["decode"]),
                    *(_ms(stages["to_model_input"][str(s)]) for s in sizes),
                    _ms(stages["merge_chroma"]),
                    _ms(stages["encode_jpeg"]),
                    _ms(stages["encode_png"]),
                ]
            )
        header = ["photo (JPEG q90 in)", "decode", *(f"resize to {s}" for s in sizes), "chroma merge"]
        out += _table([*header, "encode JPEG", "encode PNG"], rows)
        out += ["", "### Photo time split: model pass and end to end, per model (median ms)", ""]
        header = ["model"]
        for photo in report["photos"]:
            header.append(f"model pass {photo['megapixels']:.1f} MP")
        for photo in report["photos"]:
            header += [f"total {photo['megapixels']:.1f} MP, JPEG out", f"total {photo['megapixels']:.1f} MP, PNG out"]
        rows = []
        for model_id in report["photos"][0]["model_pass"]:
            row = [f"`{model_id}`"]
            row += [_ms(p["model_pass"][model_id]) for p in report["photos"]]
            for photo in report["photos"]:
                totals = photo["totals_median_ms"][model_id]
                row += [f"{totals['jpeg_ms']:.0f}", f"{totals['png_ms']:.0f}"]
            rows.append(row)
        out += _table(header, rows)
    return "\n".join(out) + "\n"


def text_report(report: dict[str, Any]) -> str:
    """A plain-text summary for the terminal."""
    settings = report["settings"]
    lines = [
        f"{report['machine']['cpu']}, {settings['threads']} threads, torch {report['machine']['torch']}",
        "",
        f"{'model':<20} {'variant':<8} {'params':>12} {'GMACs':>8} {'fp16 MB':>8} {'median ms':>10} {'p95 ms':>8}",
    ]
    for model in report["models"]:
        for variant, stats in model["variants"].items():
            timing = model.get("latency") if variant == settings["latency_variant"] else None
            median = f"{timing['median_ms']:.1f}" if timing else ""
            p95 = f"{timing['p95_ms']:.1f}" if timing else ""
            lines.append(
                f"{model['id']:<20} {variant:<8} {stats['parameters']:>12,} {stats['macs'] / 1e9:>8.2f} "
                f"{stats['fp16_bytes'] / MB:>8.1f} {median:>10} {p95:>8}"
            )
    for photo in report["photos"]:
        stages = photo["stages"]
        lines += ["", f"photo {photo['width']}x{photo['height']} ({photo['megapixels']:.1f} MP), median ms:"]
        lines.append(f"  decode {stages['decode']['median_ms']:.1f}")
        for size, stat in stages["to_model_input"].items():
            lines.append(f"  resize to {size} {stat['median_ms']:.1f}")
        for model_id, stat in photo["model_pass"].items():
            total = photo["totals_median_ms"][model_id]
            lines.append(
                f"  model pass {model_id:<20} {stat['median_ms']:8.1f}   total JPEG {total['jpeg_ms']:.0f}, "
                f"PNG {total['png_ms']:.0f}"
            )
        lines.append(f"  chroma merge {stages['merge_chroma']['median_ms']:.1f}")
        lines.append(
            f"  encode JPEG {stages['encode_jpeg']['median_ms']:.1f}, PNG {stages['encode_png']['median_ms']:.1f}"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------------------


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
        "--photos", type=parse_photo_sizes, default=DEFAULT_PHOTOS, help=f"photo sizes (default: {DEFAULT_PHOTOS})"
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
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    if isinstance(args.photos, str):
        args.photos = parse_photo_sizes(args.photos)
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


if __name__ == "__main__":
    raise SystemExit(main())
