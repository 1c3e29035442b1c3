"""The report as markdown: report.md in the report folder, and the docs page (docs/evaluation.md) with its pictures."""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path
from typing import Any

from training.evaluate.scoring import BASELINE, ranked

# What the dataset builder's photo folders hold, for the docs pages' titles.
PHOTO_SETS = {
    "unseen_photos": "photos of source packages that training never saw",
    "val_photos": "held-out photos of the training packages",
}

# Mean dE00 on 100 photos published by the student project this platform was founded on (its models were
# trained on 100,000 ImageNet photos): shown in the docs for scale only, the photos are not the same.
STUDENT_PROJECT_DELTA_E00 = (
    ("DeOldify artistic", 7.46),
    ("DeOldify stable", 7.87),
    ("CNN (U-Net after Zhang)", 9.42),
    ("BigColor", 12.49),
)


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
