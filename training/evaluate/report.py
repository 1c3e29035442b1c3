"""The whole evaluation: photos and models in; report.json, report.md, grid.png and delta_e00.png out."""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import shlex
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from colorizers import weights
from colorizers.pipeline import MAX_SIZE, MIN_SIZE, select_device
from training.evaluate.colorize import GRID_ROWS, SEED, evaluate_baseline, evaluate_model
from training.evaluate.inputs import EvaluationError, load_photos, select_models
from training.evaluate.markdown import render_markdown, write_docs
from training.evaluate.pictures import draw_delta_e00_chart, draw_grid
from training.evaluate.scoring import BASELINE, TruthCache, acceptance
from training.reporting import cpu_name


def run(
    images: str | os.PathLike[str],
    out: str | os.PathLike[str],
    models: str | Sequence[str] = "all",
    *,
    weights_dir: str | os.PathLike[str] | None = None,
    size: int | None = None,
    limit: int | None = None,
    allow_untrained: bool = False,
    docs: str | os.PathLike[str] | None = None,
    device: str | None = None,
    command: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Evaluate, then write report.json, report.md, grid.png and delta_e00.png into ``out`` (and the docs page)."""
    say = progress or (lambda _message: None)
    started = time.perf_counter()
    if size is not None and not MIN_SIZE <= size <= MAX_SIZE:
        raise EvaluationError(f"--size must be between {MIN_SIZE} and {MAX_SIZE} pixels, got {size}")
    names, skipped = select_models(models, weights_dir, allow_untrained=allow_untrained)
    for note in skipped:
        say(f"skipped {note['model']}: {note['reason']}")
    if not names:
        raise EvaluationError("no model to evaluate: " + "; ".join(f"{s['model']}: {s['reason']}" for s in skipped))
    photos = load_photos(images, limit)
    truths = TruthCache(photos)
    torch_device = select_device(device)
    say(f"{len(photos)} photos from {images}; {len(names)} models on {torch_device}")

    entries = {BASELINE: evaluate_baseline(photos, truths)}
    outputs = {BASELINE: [np.asarray(p.grey.convert("RGB")) for p in photos[:GRID_ROWS]]}
    for name in names:
        t0 = time.perf_counter()
        entry, kept = evaluate_model(
            name, photos, truths, weights_dir=weights_dir, size=size, device=torch_device, keep=GRID_ROWS
        )
        entries[name], outputs[name] = entry, kept
        mean = entry["mean"]
        say(
            f"{name}: dE00 {mean['delta_e00']:.2f}, PSNR {mean['psnr']:.2f} dB, CF {mean['colourfulness']:.1f}, "
            f"{mean['latency_ms']:.1f} ms/image ({time.perf_counter() - t0:.1f} s)"
        )
    say(f"{BASELINE}: dE00 {entries[BASELINE]['mean']['delta_e00']:.2f}")

    report: dict[str, Any] = {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": command or reproduce_command(images, out, models, weights_dir, size, limit, allow_untrained, docs),
        "images": {"dir": str(images), "count": len(photos), "names": [p.name for p in photos]},
        "settings": {
            "size": size,
            "limit": limit,
            "allow_untrained": allow_untrained,
            "seed": SEED,
            "device": str(torch_device),
            "hardware": hardware(torch_device),
            "torch": torch.__version__,
            "weights_dir": str(weights.weights_dir(weights_dir)),
        },
        "baseline": BASELINE,
        "skipped": skipped,
        "models": entries,
    }
    report["acceptance"] = acceptance(report)
    report["seconds"] = round(time.perf_counter() - started, 2)

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(_finite(report), indent=2, allow_nan=False) + "\n")
    draw_grid(photos[:GRID_ROWS], outputs, report, out / "grid.png")
    draw_delta_e00_chart(report, out / "delta_e00.png")
    (out / "report.md").write_text(render_markdown(report, grid="grid.png", chart="delta_e00.png"))
    if docs is not None:
        write_docs(report, out, docs)
    say(f"wrote {out / 'report.json'}, report.md, grid.png, delta_e00.png in {report['seconds']:.1f} s")
    return report


def hardware(device: torch.device) -> str:
    """A short description of the machine the models ran on."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    return f"{cpu_name()}, {torch.get_num_threads()} torch threads"


def _finite(value: Any) -> Any:
    """JSON-safe copy: non-finite floats (PSNR of identical images) become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def reproduce_command(
    images: str | os.PathLike[str],
    out: str | os.PathLike[str],
    models: str | Sequence[str],
    weights_dir: str | os.PathLike[str] | None,
    size: int | None,
    limit: int | None,
    allow_untrained: bool,
    docs: str | os.PathLike[str] | None = None,
) -> str:
    """The command line that repeats an evaluation."""
    model_arg = models if isinstance(models, str) else ",".join(models)
    parts = ["python", "-m", "training", "evaluate", "--images", str(images), "--models", model_arg, "--out", str(out)]
    if weights_dir is not None:
        parts += ["--weights-dir", str(weights_dir)]
    if size is not None:
        parts += ["--size", str(size)]
    if limit is not None:
        parts += ["--limit", str(limit)]
    if allow_untrained:
        parts.append("--allow-untrained")
    if docs is not None:
        parts += ["--docs", str(docs)]
    return shlex.join(parts)
