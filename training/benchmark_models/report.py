"""The whole benchmark as a JSON-ready dict: the machine, the settings, each model's counts and timings, photos."""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import shlex
from collections.abc import Callable
from typing import Any

import numpy as np
import PIL
import torch

from colorizers.pipeline import Colorizer
from colorizers.registry import list_models
from training.benchmark_models.counting import variant_stats
from training.benchmark_models.inference import latency, load_colorizer, photo_split
from training.reporting import cpu_name


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


def machine_info() -> dict[str, Any]:
    """The CPU, the CPUs this process may use, library versions and the load before the run (timings depend on it)."""
    info: dict[str, Any] = {
        "cpu": cpu_name(),
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
    """CPUs this process may run on (its affinity, e.g. a container's cpuset), not every CPU of the machine."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1
