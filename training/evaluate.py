"""Evaluation: every model colourises the greyscale of the same colour photos; scores, report and pictures."""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import shlex
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from colorizers import color, imaging, weights
from colorizers.pipeline import MAX_SIZE, MIN_SIZE, Colorizer, select_device
from colorizers.registry import get_spec, list_models
from training.metrics import colourfulness, delta_e00, psnr

BASELINE = "grey (baseline)"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp")
GRID_ROWS = 4
SEED = 0  # models with diverse outputs are scored with this seed, so a report can be reproduced
# Truth Lab images are kept between models up to this many pixels in all (12 bytes a pixel), else recomputed.
_CACHE_PIXELS = 40_000_000

# What the dataset builder's photo folders hold, for the docs pages' titles.
PHOTO_SETS = {
    "unseen_photos": "photos of source packages that training never saw",
    "val_photos": "held-out photos of the training packages",
}
# Acceptance bar: mean dE00 at least 10 % below the grey baseline, and colourfulness at least half the truth's.
ACCEPT_DELTA_E_BELOW_BASELINE = 0.10
ACCEPT_CF_RATIO = 0.50

# Mean dE00 on 100 photos published by the student project this platform was founded on (its models were
# trained on 100,000 ImageNet photos): shown in the docs for scale only, the photos are not the same.
STUDENT_PROJECT_DELTA_E00 = (
    ("DeOldify artistic", 7.46),
    ("DeOldify stable", 7.87),
    ("CNN (U-Net after Zhang)", 9.42),
    ("BigColor", 12.49),
)

_PROVENANCE_KEYS = (
    "provenance",
    "architecture",
    "variant",
    "recipe",
    "steps",
    "train_seconds",
    "hardware",
    "source",
    "data_manifest_sha256",
    "parameters",
    "dtype",
    "created",
)
_MEAN_KEYS = ("delta_e00", "psnr", "colourfulness", "colourfulness_truth", "delta_cf", "latency_ms")


class EvaluationError(ValueError):
    """The evaluation cannot run as asked (no photos, unknown model, nothing to evaluate); the message says why."""


@dataclass
class Photo:
    """One ground-truth colour photo and the grey image every model receives."""

    name: str
    rgb: np.ndarray  # (H, W, 3) uint8 sRGB
    grey: Image.Image  # mode "L", same size, same CIE L as rgb
    colourfulness: float


# ----------------------------------------------------------------------------------------------------------------
# Inputs: photos and models
# ----------------------------------------------------------------------------------------------------------------


def load_photos(directory: str | os.PathLike[str], limit: int | None = None) -> list[Photo]:
    """The colour photos of a folder (sorted by name, the first ``limit``), decoded like an upload."""
    directory = Path(directory)
    if not directory.is_dir():
        raise EvaluationError(f"no such folder of photos: {directory}")
    files = sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if limit is not None:
        files = files[: max(0, limit)]
    if not files:
        raise EvaluationError(f"no photos ({', '.join(IMAGE_SUFFIXES)}) in {directory}")
    photos = []
    for path in files:
        try:
            rgb = np.asarray(imaging.decode(path.read_bytes()).rgb)  # (H, W, 3) uint8
        except imaging.ImageError as exc:
            raise EvaluationError(f"{path}: {exc.message}") from exc
        grey = Image.fromarray(color.rgb8_to_gray8(rgb))  # (H, W) uint8 -> mode "L"
        photos.append(Photo(path.name, rgb, grey, colourfulness(rgb)))
    return photos


def select_models(
    models: str | Sequence[str], weights_dir: str | os.PathLike[str] | None = None, *, allow_untrained: bool = False
) -> tuple[list[str], list[dict[str, str]]]:
    """Served names to evaluate and the ones skipped (with the reason).

    ``"all"`` means every served model with weights in the weights folder plus every imported ("-x") model there;
    a served model without weights is skipped unless ``allow_untrained`` (then an untrained compact model runs).
    """
    found = weights.available(weights_dir)
    served = [spec.id for spec in list_models(served_only=True)]
    if isinstance(models, str):
        requested = [m.strip() for m in models.split(",") if m.strip()]
    else:
        requested = list(models)
    if not requested:
        raise EvaluationError("no models given: use --models all or a comma-separated list of model ids")
    skipped: list[dict[str, str]] = []
    if requested == ["all"]:
        imported = [n for n, meta in found.items() if meta.get("provenance") == "imported" and _is_served(meta)]
        requested = served + sorted(n for n in imported if n not in served)
        for spec in list_models(served_only=True):
            if spec.needs_reference:  # colours from a reference photo: scored with references (docs/exemplar.md)
                requested.remove(spec.id)
                skipped.append({"model": spec.id, "reason": "needs a reference photo; see docs/exemplar.md"})
    known = set(served) | {spec.id for spec in list_models()} | set(found)
    unknown = [m for m in requested if m not in known]
    if unknown:
        raise EvaluationError(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    chosen = []
    for name in dict.fromkeys(requested):
        if name in found:
            chosen.append(name)
        elif allow_untrained:
            chosen.append(name)
        else:
            where = weights.weights_dir(weights_dir)
            skipped.append(
                {
                    "model": name,
                    "reason": f"no weights ({name}.safetensors) in {where}; train or import it, "
                    "or pass --allow-untrained to score an untrained model",
                }
            )
    return chosen, skipped


def _is_served(meta: dict[str, Any]) -> bool:
    try:
        return get_spec(meta["architecture"]).served
    except KeyError:
        return False


# ----------------------------------------------------------------------------------------------------------------
# Scoring
# ----------------------------------------------------------------------------------------------------------------


def score(
    truth: np.ndarray, output: np.ndarray, truth_lab: np.ndarray | None = None, truth_cf: float | None = None
) -> dict[str, Any]:
    """Scores of one output (H, W, 3) uint8 against the truth (H, W, 3) uint8: a dict of floats."""
    if truth_lab is None:
        truth_lab = color.rgb_to_lab(truth)  # (H, W, 3)
    cf_truth = colourfulness(truth) if truth_cf is None else truth_cf
    cf = colourfulness(output)
    return {
        "delta_e00": float(delta_e00(truth_lab, color.rgb_to_lab(output)).mean()),
        "psnr": psnr(truth, output),
        "colourfulness": cf,
        "colourfulness_truth": cf_truth,
        "delta_cf": cf - cf_truth,
        "cf_ratio": cf / cf_truth if cf_truth > 0 else None,
    }


def summarise(per_image: list[dict[str, Any]]) -> dict[str, Any]:
    """Means over images: dE00 and PSNR per image first, then over images; CF ratio = mean CF / mean truth CF."""
    means: dict[str, Any] = {}
    for key in _MEAN_KEYS:
        values = [row[key] for row in per_image if row.get(key) is not None]
        means[key] = float(np.mean(values)) if values else None
    latencies = [row["latency_ms"] for row in per_image if row.get("latency_ms") is not None]
    means["latency_ms_median"] = float(np.median(latencies)) if latencies else None
    cf_truth = means["colourfulness_truth"]
    means["cf_ratio"] = means["colourfulness"] / cf_truth if cf_truth else None
    means["images"] = len(per_image)
    return means


def provenance(meta: dict[str, Any]) -> dict[str, Any]:
    """The sidecar facts a report shows: how the weights were made (trained, imported) and with what."""
    found = {key: meta[key] for key in _PROVENANCE_KEYS if meta.get(key) is not None}
    found.setdefault("provenance", "untrained")
    return found


class _TruthCache:
    """Lab of each truth photo, computed once when the photos are small enough to keep, else on demand."""

    def __init__(self, photos: Sequence[Photo]):
        self.photos = photos
        self.keep = sum(p.rgb.shape[0] * p.rgb.shape[1] for p in photos) <= _CACHE_PIXELS
        self.labs: dict[int, np.ndarray] = {}

    def lab(self, index: int) -> np.ndarray:
        if index in self.labs:
            return self.labs[index]
        lab = color.rgb_to_lab(self.photos[index].rgb)  # (H, W, 3) float64
        if self.keep:
            lab = lab.astype(np.float32)
            self.labs[index] = lab
        return lab


def evaluate_model(
    name: str,
    photos: Sequence[Photo],
    truths: _TruthCache,
    *,
    weights_dir: str | os.PathLike[str] | None = None,
    size: int | None = None,
    device: str | torch.device | None = None,
    keep: int = GRID_ROWS,
) -> tuple[dict[str, Any], list[np.ndarray]]:
    """Run one model on every photo's grey image; returns its report entry and the first ``keep`` outputs."""
    colorizer = Colorizer.load(name, weights_dir, device=device)
    seed = SEED if colorizer.spec.supports_seed else None
    colorizer.check_options(seed=seed, size=size)
    colorizer.colorize(photos[0].grey, seed=seed, size=size)  # warm-up: first-call allocations are not timed
    per_image, kept = [], []
    for index, photo in enumerate(photos):
        start = time.perf_counter()
        output = colorizer.colorize(photo.grey, seed=seed, size=size)
        latency_ms = (time.perf_counter() - start) * 1000.0
        rgb = np.asarray(output.convert("RGB"))  # (H, W, 3) uint8
        row = {"image": photo.name, **score(photo.rgb, rgb, truths.lab(index), photo.colourfulness)}
        row["latency_ms"] = latency_ms
        per_image.append(row)
        if index < keep:
            kept.append(rgb)
    entry = {
        "name": name,
        "baseline": False,
        "architecture": colorizer.spec.id,
        "family": colorizer.spec.family,
        "working_size": size or colorizer.working_size,
        "seed": seed,
        "provenance": provenance(colorizer.meta),
        "mean": summarise(per_image),
        "per_image": per_image,
    }
    if colorizer.meta.get("provenance") == "untrained":
        entry["provenance"]["variant"] = "compact"
    del colorizer
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return entry, kept


def evaluate_baseline(photos: Sequence[Photo], truths: _TruthCache) -> dict[str, Any]:
    """The grey image itself as the output (a = b = 0): the score of not colourising at all."""
    per_image = []
    for index, photo in enumerate(photos):
        grey = np.asarray(photo.grey.convert("RGB"))  # (H, W, 3) uint8
        per_image.append({"image": photo.name, **score(photo.rgb, grey, truths.lab(index), photo.colourfulness)})
        per_image[-1]["latency_ms"] = None
    return {
        "name": BASELINE,
        "baseline": True,
        "architecture": None,
        "provenance": {"provenance": "baseline"},
        "mean": summarise(per_image),
        "per_image": per_image,
    }


def acceptance(report: dict[str, Any]) -> dict[str, Any]:
    """Pass/fail per model: mean dE00 >= 10 % below the grey baseline and CF ratio >= 0.5."""
    base = report["models"][BASELINE]["mean"]["delta_e00"]
    bar = (1.0 - ACCEPT_DELTA_E_BELOW_BASELINE) * base
    verdicts = {}
    for name, entry in report["models"].items():
        if entry["baseline"]:
            continue
        de, ratio = entry["mean"]["delta_e00"], entry["mean"]["cf_ratio"]
        de_ok = de <= bar
        cf_ok = ratio is not None and ratio >= ACCEPT_CF_RATIO
        verdicts[name] = {
            "delta_e00_below_baseline": (base - de) / base if base else None,
            "delta_e00_ok": de_ok,
            "cf_ratio": ratio,
            "cf_ok": cf_ok,
            "passed": de_ok and cf_ok,
        }
    return {
        "rule": f"mean ΔE00 is at least {ACCEPT_DELTA_E_BELOW_BASELINE:.0%} below the grey baseline's "
        f"(≤ {bar:.3f}) and its colourfulness at least {ACCEPT_CF_RATIO:.0%} of the ground truth's",
        "baseline_delta_e00": base,
        "delta_e00_bar": bar,
        "models": verdicts,
    }


def hardware(device: torch.device) -> str:
    """A short description of the machine the models ran on."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {torch.get_num_threads()} torch threads"


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
    truths = _TruthCache(photos)
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


# ----------------------------------------------------------------------------------------------------------------
# Pictures (matplotlib, Agg: no display needed)
# ----------------------------------------------------------------------------------------------------------------


def ranked(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Report entries, baseline included, from the lowest mean dE00 to the highest."""
    return sorted(report["models"].values(), key=lambda e: e["mean"]["delta_e00"])


def _untrained(entry: dict[str, Any]) -> bool:
    return entry["provenance"].get("provenance") == "untrained"


def _label(entry: dict[str, Any], sep: str = "\n") -> str:
    return entry["name"] + (f"{sep}(untrained)" if _untrained(entry) else "")


def draw_grid(photos: Sequence[Photo], outputs: dict[str, list[np.ndarray]], report: dict[str, Any], path: Path):
    """Rows: the first photos; columns: grey input, truth, then every model from best to worst mean dE00."""
    from matplotlib.figure import Figure

    columns = [e for e in ranked(report) if not e["baseline"]]
    rows = len(photos)
    ncols = 2 + len(columns)
    cell = 2.1  # inches per column
    ratios = [min(1.5, max(0.5, p.rgb.shape[0] / p.rgb.shape[1])) for p in photos]  # height / width per row
    height = cell * sum(ratios) + 0.35 * rows + 0.8  # cells + a label line per row + titles
    fig = Figure(figsize=(cell * ncols, height), dpi=100, layout="constrained")
    axes = fig.subplots(rows, ncols, squeeze=False, gridspec_kw={"height_ratios": ratios})
    per_image = {e["name"]: e["per_image"] for e in columns}
    baseline = report["models"][BASELINE]["per_image"]
    for r, photo in enumerate(photos):
        grey = ("input (grey) = baseline", outputs[BASELINE][r], baseline[r]["delta_e00"])
        cells = [grey, ("truth", photo.rgb, None)]
        cells += [(_label(e), outputs[e["name"]][r], per_image[e["name"]][r]["delta_e00"]) for e in columns]
        for c, (title, image, de) in enumerate(cells):
            ax = axes[r][c]
            ax.imshow(image, interpolation="lanczos")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(title, fontsize=10)
            if de is not None:
                ax.set_xlabel(f"ΔE00 {de:.2f}", fontsize=9)
            if c == 0:
                ax.set_ylabel(_short(photo.name), fontsize=8)
    fig.suptitle("Input, ground truth and each model (columns from lowest mean ΔE00)", fontsize=11)
    fig.savefig(path, format="png")


def _short(name: str, width: int = 28) -> str:
    stem = Path(name).stem
    return stem if len(stem) <= width else stem[: width - 1] + "…"


def draw_delta_e00_chart(report: dict[str, Any], path: Path) -> None:
    """Horizontal bars of mean dE00 per model (lower is better), the grey baseline and the acceptance bar as lines."""
    from matplotlib.figure import Figure

    entries = [e for e in ranked(report) if not e["baseline"]]
    verdicts = report["acceptance"]["models"]
    base = report["acceptance"]["baseline_delta_e00"]
    bar = report["acceptance"]["delta_e00_bar"]
    fig = Figure(figsize=(8.0, 1.6 + 0.45 * max(1, len(entries))), dpi=100, layout="constrained")
    ax = fig.subplots()
    values = [e["mean"]["delta_e00"] for e in entries]
    colours = ["#3a7d44" if verdicts[e["name"]]["passed"] else "#9e9e9e" for e in entries]
    positions = list(range(len(entries)))[::-1]  # best model at the top
    ax.barh(positions, values, color=colours)
    ax.set_yticks(positions, [_label(e, " ") for e in entries])
    for y, v in zip(positions, values, strict=True):
        ax.text(v, y, f" {v:.2f}", va="center", fontsize=9)
    ax.axvline(base, color="#c62828", linewidth=1.5, label=f"grey baseline {base:.2f}")
    ax.axvline(bar, color="#c62828", linestyle="--", linewidth=1, label=f"acceptance bar {bar:.2f} (baseline − 10 %)")
    ax.set_xlim(0, max([*values, base]) * 1.18)
    ax.set_xlabel("mean ΔE00 (CIEDE2000) — lower is better")
    ax.set_title(f"Mean ΔE00 on {report['images']['count']} photos (green bars pass the acceptance bar)", fontsize=11)
    fig.legend(loc="outside lower center", ncols=2, fontsize=8)
    fig.savefig(path, format="png")


# ----------------------------------------------------------------------------------------------------------------
# Markdown: report.md and the docs page
# ----------------------------------------------------------------------------------------------------------------


def _num(value: float | None, fmt: str = ".2f") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—" if value is None else ("∞" if value > 0 else "−∞")
    return format(value, fmt)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def _provenance_cell(entry: dict[str, Any]) -> str:
    prov = entry["provenance"]
    kind = prov.get("provenance", "untrained")
    if kind == "trained":
        steps = prov.get("steps")
        return f"trained{f', {steps:,} steps' if isinstance(steps, int) else ''}"
    return kind


def results_table(report: dict[str, Any]) -> str:
    """The results table, sorted by mean dE00, baseline included, with the acceptance verdict."""
    verdicts = report["acceptance"]["models"]
    base = report["acceptance"]["baseline_delta_e00"]
    lines = [
        "| # | model | weights | ΔE00 ↓ | vs grey | PSNR dB ↑ | CF | CF ratio | ΔCF | ms / image | acceptance |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for rank, entry in enumerate(ranked(report), start=1):
        mean = entry["mean"]
        if entry["baseline"]:
            vs, verdict = "—", "reference"
        else:
            vs = f"{(mean['delta_e00'] - base) / base:+.1%}" if base else "—"
            v = verdicts[entry["name"]]
            failed = [what for what, ok in (("ΔE00", v["delta_e00_ok"]), ("CF", v["cf_ok"])) if not ok]
            verdict = "**pass**" if v["passed"] else f"fail ({', '.join(failed)})"
        name = f"*{entry['name']}*" if entry["baseline"] else f"`{entry['name']}`"
        lines.append(
            f"| {rank} | {name} | {_provenance_cell(entry)} | {_num(mean['delta_e00'])} | {vs} | {_num(mean['psnr'])} "
            f"| {_num(mean['colourfulness'], '.1f')} | {_num(mean['cf_ratio'])} | {_num(mean['delta_cf'], '+.1f')} "
            f"| {_num(mean['latency_ms'], '.1f')} | {verdict} |"
        )
    return "\n".join(lines)


def provenance_table(report: dict[str, Any]) -> str:
    """Where each model's weights come from, read from its sidecar."""
    lines = [
        "| model | weights | variant | recipe | steps | training time | hardware | weights written |",
        "|---|---|---|---|---:|---:|---|---|",
    ]
    for entry in report["models"].values():
        if entry["baseline"]:
            continue
        prov = entry["provenance"]
        steps = prov.get("steps")
        lines.append(
            f"| `{entry['name']}` | {prov.get('provenance', '—')}"
            + (f" ({prov['source']})" if prov.get("source") else "")
            + f" | {prov.get('variant') or '—'} | {prov.get('recipe') or '—'} "
            f"| {f'{steps:,}' if isinstance(steps, int) else '—'} | {_duration(prov.get('train_seconds'))} "
            f"| {prov.get('hardware') or '—'} | {str(prov.get('created') or '—')[:10]} |"
        )
    return "\n".join(lines)


def render_markdown(report: dict[str, Any], *, grid: str, chart: str, title: str = "Evaluation report") -> str:
    """Markdown with the table, acceptance, pictures, provenance, the student project's figures and the command."""
    settings = report["settings"]
    acc = report["acceptance"]
    verdicts = acc["models"]
    passed = sum(v["passed"] for v in verdicts.values())
    truth_cf = report["models"][BASELINE]["mean"]["colourfulness_truth"]
    size = f"{settings['size']} px for every model" if settings["size"] else "each model's own working size"
    lines = [
        f"# {title}",
        "",
        f"{report['images']['count']} colour photos from `{report['images']['dir']}`; every model receives their "
        f"greyscale (same CIE L) at {size} and its chroma is merged with the photo's own lightness at full size "
        f"(the serving pipeline, `colorizers.pipeline.Colorizer.colorize`). Run {report['created'][:10]} on "
        f"{settings['hardware']} (`{settings['device']}`, torch {settings['torch']}). Mean colourfulness of the "
        f"ground truth: {_num(truth_cf, '.1f')}.",
        "",
        results_table(report),
        "",
        "ΔE00: CIEDE2000 per pixel, averaged over each photo, then over photos (lower is better). "
        "PSNR: on 8-bit RGB, averaged over photos. CF: colourfulness of the output (Hasler & Süsstrunk 2003); "
        "CF ratio = mean CF of the outputs / mean CF of the truths; ΔCF = CF(output) − CF(truth). "
        "ms / image: the pipeline call (resize, model, chroma merge), no file I/O, after one warm-up call.",
        "",
    ]
    if report["skipped"]:
        lines += ["Not evaluated:", ""]
        lines += [f"- `{s['model']}`: {s['reason']}" for s in report["skipped"]]
        lines.append("")
    lines += [
        "## Acceptance",
        "",
        f"A served model passes when its {acc['rule']}. "
        f"Grey baseline: ΔE00 {_num(acc['baseline_delta_e00'])}; bar: ΔE00 ≤ {_num(acc['delta_e00_bar'])}. "
        f"**{passed} of {len(verdicts)} models pass.**",
        "",
        "| model | ΔE00 vs grey | ≤ −10 % | CF ratio | ≥ 0.50 | result |",
        "|---|---:|---|---:|---|---|",
    ]
    for name, v in sorted(verdicts.items(), key=lambda item: report["models"][item[0]]["mean"]["delta_e00"]):
        below = v["delta_e00_below_baseline"]
        vs = f"{-below:+.1%}" if below is not None else "—"
        lines.append(
            f"| `{name}` | {vs} | {'yes' if v['delta_e00_ok'] else 'no'} "
            f"| {_num(v['cf_ratio'])} | {'yes' if v['cf_ok'] else 'no'} | {'**pass**' if v['passed'] else 'fail'} |"
        )
    lines += [
        "",
        "## Pictures",
        "",
        f"![input, truth and every model]({grid})",
        "",
        f"![mean ΔE00 per model]({chart})",
        "",
        "## Weights",
        "",
        provenance_table(report),
        "",
        "## For scale: the student project",
        "",
        "The student project this platform grew from scored its models with the same metric, mean ΔE00 on 100 "
        "photos. Its models were trained on 100,000 ImageNet photos and scored on other photos than these, so "
        "the figures show the scale of a good result, not a head-to-head comparison.",
        "",
        "| model (student project) | mean ΔE00 on 100 photos |",
        "|---|---:|",
    ]
    lines += [f"| {name} | {value:.2f} |" for name, value in STUDENT_PROJECT_DELTA_E00]
    lines += [
        "",
        "## Reproduce",
        "",
        "```",
        report["command"],
        "```",
        "",
    ]
    return "\n".join(lines)


def write_docs(report: dict[str, Any], out: str | os.PathLike[str], docs: str | os.PathLike[str]) -> Path:
    """Write the docs page (e.g. docs/evaluation.md) from a report; the pictures are copied to its img/ folder."""
    docs = Path(docs)
    img = docs.parent / "img"
    img.mkdir(parents=True, exist_ok=True)
    grid, chart = f"img/{docs.stem}-grid.png", f"img/{docs.stem}-delta-e00.png"  # one pair of pictures per page
    shutil.copyfile(Path(out) / "grid.png", docs.parent / grid)
    shutil.copyfile(Path(out) / "delta_e00.png", docs.parent / chart)
    folder = Path(report["images"]["dir"]).name
    text = render_markdown(report, grid=grid, chart=chart, title=f"Evaluation: {PHOTO_SETS.get(folder, folder)}")
    docs.write_text(text)
    return docs


# ----------------------------------------------------------------------------------------------------------------
# Command line (``python -m training evaluate``)
# ----------------------------------------------------------------------------------------------------------------


def main(args: Any) -> int:
    """Entry point of ``python -m training evaluate``; returns the exit status."""
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
