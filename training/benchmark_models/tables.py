"""The benchmark report for people: markdown tables (docs/benchmarks/models.md) and a plain-text terminal summary."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from training.benchmark_models.counting import MB


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Markdown table lines: the first column left-aligned, the others (numbers) right-aligned."""
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|",
    ]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _ms(stat: dict[str, Any]) -> str:
    """A median in ms: one decimal below 100 ms, whole milliseconds above (the decimal is noise there)."""
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
        out += _photo_tables(report["photos"])
    return "\n".join(out) + "\n"


def _photo_tables(photos: Sequence[dict[str, Any]]) -> list[str]:
    """The photo time split: one table of the stages shared by all models, one of each model's pass and totals."""
    sizes = sorted({int(k) for p in photos for k in p["stages"]["to_model_input"]}, reverse=True)
    out = ["", "### Photo time split: stages that do not depend on the model (median ms)", ""]
    rows = []
    for photo in photos:
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
    for photo in photos:
        header.append(f"model pass {photo['megapixels']:.1f} MP")
    for photo in photos:
        header += [f"total {photo['megapixels']:.1f} MP, JPEG out", f"total {photo['megapixels']:.1f} MP, PNG out"]
    rows = []
    for model_id in photos[0]["model_pass"]:
        row = [f"`{model_id}`"]
        row += [_ms(p["model_pass"][model_id]) for p in photos]
        for photo in photos:
            totals = photo["totals_median_ms"][model_id]
            row += [f"{totals['jpeg_ms']:.0f}", f"{totals['png_ms']:.0f}"]
        rows.append(row)
    return out + _table(header, rows)


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
