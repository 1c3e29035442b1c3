"""The report's pictures: the grid of inputs, truths and outputs, and the bar chart of mean ΔE00 per model.

Drawn with matplotlib's object API on the Agg canvas (``Figure``, not ``pyplot``), so no display is needed and
no global figure state is left behind; matplotlib is imported only when a picture is drawn.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from training.evaluate.inputs import Photo
from training.evaluate.scoring import BASELINE, ranked


def _untrained(entry: dict[str, Any]) -> bool:
    return entry["provenance"].get("provenance") == "untrained"


def _label(entry: dict[str, Any], sep: str = "\n") -> str:
    return entry["name"] + (f"{sep}(untrained)" if _untrained(entry) else "")


def _short(name: str, width: int = 28) -> str:
    stem = Path(name).stem
    return stem if len(stem) <= width else stem[: width - 1] + "…"


def draw_grid(
    photos: Sequence[Photo], outputs: dict[str, list[np.ndarray]], report: dict[str, Any], path: Path
) -> None:
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
