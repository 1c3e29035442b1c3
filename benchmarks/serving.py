"""Serving benchmark against a running stack (`make up`): gateway overhead, fan-out latency, throughput.

    .venv/bin/python benchmarks/serving.py [--gateway URL] [--torchserve URL] [--management URL]
        [--model zhang-eccv16] [--repeats 20] [--pairs 100] [--out docs/benchmarks.json] [--scan | --overhead]

Figures printed (and written as JSON):
1. gateway overhead: the same photo and model through the gateway (decode, grey at working size,
   TorchServe, chroma merge at full size, encode, store) against a direct TorchServe call with the
   photo (the handler resizes it; the result stays at working size), in ``--pairs`` interleaved pairs: median and
   p95, their ratio, and the median of the pairs' ratios (which drift on a shared machine moves least), at
   256x256 (PNG asked for, like TorchServe's answer) and at 12 megapixels (the default format: JPEG);
2. a 12-megapixel JPEG scan, in colour and as a greyscale (one-channel) JPEG, the usual form of a black-and-white
   scan: one model through the gateway, JPEG out, against the model pass alone (a direct TorchServe call with
   the working-size grey picture the gateway sends), and all models at once;
3. all-models fan-out latency against the slowest single model and against the sum of all models;
4. throughput (requests/s) of one model at concurrency 1, 4 and 16, as the archive is built (batchSize 1 on a
   CPU) and with TorchServe batching (a copy registered with batch_size=4, max_batch_delay=20 ms).

``--scan`` measures and prints only the scan (2), in a minute, and writes no file; ``--overhead`` only (1).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import platform
import statistics
import time
from pathlib import Path

import httpx
import numpy as np
from merge import greyscale  # the benchmark next to this one
from PIL import Image


def photo(width: int, height: int) -> bytes:
    """A smooth synthetic colour photo as JPEG q90 (decoding cost like a real photo's)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    rgb = np.stack(
        [0.5 + 0.4 * np.sin(x / width * 6.3), 0.5 + 0.4 * np.cos(y / height * 4.1), 0.5 + 0.3 * np.sin((x + y) / 900)],
        axis=-1,
    )
    buffer = io.BytesIO()
    Image.fromarray((rgb * 255).astype(np.uint8)).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def summary(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"median_ms": statistics.median(ordered) * 1000, "p95_ms": p95 * 1000, "n": len(ordered)}


async def timed(call) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    response = await call()
    response.raise_for_status()
    return time.perf_counter() - started


async def overhead(client: httpx.AsyncClient, args: argparse.Namespace, image: bytes, accept: str) -> dict:
    def via_gateway():  # type: ignore[no-untyped-def]
        return client.post(
            f"{args.gateway}/v1/colorize",
            files={"images": ("p.jpg", image, "image/jpeg")},
            data={"model": args.model},
            headers={"Accept": accept},
        )

    def direct():  # type: ignore[no-untyped-def]
        return client.post(
            f"{args.torchserve}/predictions/{args.model}", files={"data": ("p.jpg", image, "image/jpeg")}
        )

    for call in (via_gateway, direct):  # warm-up
        await timed(call)
    gateway_s, direct_s = [], []
    for _ in range(args.pairs):  # interleaved, so drift hits both alike
        gateway_s.append(await timed(via_gateway))
        direct_s.append(await timed(direct))
    g, d = summary(gateway_s), summary(direct_s)
    return {
        "gateway": g,
        "torchserve": d,
        "overhead_ms": g["median_ms"] - d["median_ms"],
        "median_ratio": g["median_ms"] / d["median_ms"],
        "paired_median_ratio": statistics.median(a / b for a, b in zip(gateway_s, direct_s, strict=True)),
        "p95_ratio": g["p95_ms"] / d["p95_ms"],
    }


async def scan(client: httpx.AsyncClient, args: argparse.Namespace, image: bytes) -> dict:
    """A 12-megapixel JPEG: one model through the gateway (JPEG out) against its model pass alone; all models."""
    models = {m["id"]: m for m in (await client.get(f"{args.gateway}/v1/models")).json()["models"]}
    side = models[args.model]["working_size"]
    grey = io.BytesIO()
    Image.open(io.BytesIO(image)).convert("L").resize((side, side), Image.Resampling.BICUBIC).save(grey, "BMP")

    def model_pass():  # type: ignore[no-untyped-def]
        return client.post(
            f"{args.torchserve}/predictions/{args.model}", files={"data": ("grey.bmp", grey.getvalue(), "image/bmp")}
        )

    def one_model():  # type: ignore[no-untyped-def]
        return client.post(
            f"{args.gateway}/v1/colorize",
            files={"images": ("scan.jpg", image, "image/jpeg")},
            data={"model": args.model},
            headers={"Accept": "image/*"},
        )

    def all_models():  # type: ignore[no-untyped-def]
        return client.post(
            f"{args.gateway}/v1/colorize", files={"images": ("scan.jpg", image, "image/jpeg")}, data={"model": "all"}
        )

    for call in (model_pass, one_model, all_models):  # warm-up (the gateway builds its merge table once)
        await timed(call)
    runs: dict[str, list[float]] = {"model_pass": [], "one_model": [], "all_models": []}
    for index in range(args.repeats):  # interleaved, so drift hits all alike
        runs["model_pass"].append(await timed(model_pass))
        runs["one_model"].append(await timed(one_model))
        if index % 4 == 0:
            runs["all_models"].append(await timed(all_models))
    figures = {name: summary(seconds) for name, seconds in runs.items()}
    return {
        **figures,
        "models": len([m for m in models.values() if m["ready"] and not m["needs_reference"]]),
        "one_model_added_ms": figures["one_model"]["median_ms"] - figures["model_pass"]["median_ms"],
    }


async def fanout(client: httpx.AsyncClient, args: argparse.Namespace, image: bytes) -> dict:
    catalogue = (await client.get(f"{args.gateway}/v1/models")).json()["models"]
    models = [m["id"] for m in catalogue if m["ready"] and not m["needs_reference"]]  # all automatic models
    single: dict[str, float] = {}
    for model in models:
        runs = []
        for _ in range(3):
            runs.append(
                await timed(
                    lambda m=model: client.post(
                        f"{args.gateway}/v1/colorize",
                        files={"images": ("p.jpg", image, "image/jpeg")},
                        data={"model": m},
                    )
                )
            )
        single[model] = statistics.median(runs) * 1000
    all_runs = []
    for _ in range(3):
        all_runs.append(
            await timed(
                lambda: client.post(
                    f"{args.gateway}/v1/colorize",
                    files={"images": ("p.jpg", image, "image/jpeg")},
                    data={"model": "all"},
                )
            )
        )
    fan = statistics.median(all_runs) * 1000
    return {
        "models": len(models),
        "single_ms": single,
        "all_ms": fan,
        "slowest_ms": max(single.values()),
        "sum_ms": sum(single.values()),
        "all_over_slowest": fan / max(single.values()),
        "all_over_sum": fan / sum(single.values()),
    }


async def throughput(client: httpx.AsyncClient, url: str, image: bytes, concurrency: int, seconds: float) -> float:
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            response = await client.post(url, files={"data": ("p.jpg", image, "image/jpeg")})
            response.raise_for_status()
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done / (time.perf_counter() - started)


async def batching(client: httpx.AsyncClient, args: argparse.Namespace, image: bytes) -> dict:
    """Throughput of the archive as built (batchSize 1 on a CPU) and of a copy that batches up to 4 requests."""
    batched = f"{args.model}-batch4"
    response = await client.post(
        f"{args.management}/models",
        params={
            "url": f"{args.model}.mar",
            "model_name": batched,
            "batch_size": 4,
            "max_batch_delay": 20,
            "initial_workers": 1,
            "synchronous": "true",
        },
        timeout=300,
    )
    if response.status_code not in (200, 409):
        raise RuntimeError(f"cannot register {batched}: {response.text}")
    try:
        table = {}
        for name, label in ((args.model, "archive"), (batched, "batch_size=4, max_batch_delay=20 ms")):
            url = f"{args.torchserve}/predictions/{name}"
            await throughput(client, url, image, 1, 2.0)  # warm-up
            table[label] = {str(c): await throughput(client, url, image, c, args.seconds) for c in (1, 4, 16)}
        return table
    finally:
        await client.delete(f"{args.management}/models/{batched}")


async def main_async(args: argparse.Namespace) -> dict:
    small, large = photo(256, 256), photo(4000, 3000)
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        described = (await client.get(f"{args.management}/models/{args.model}")).json()[0]
        results = {
            "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
            "date": time.strftime("%Y-%m-%d"),
            "model": args.model,
            "archive_batch_size": described.get("batchSize"),
        }
        if not args.overhead:
            results["scan_12mp"] = await scan(client, args, large)
            results["scan_12mp_grey"] = await scan(client, args, greyscale(large))
        if not args.scan:
            results["overhead_256"] = await overhead(client, args, small, "image/png")
            results["overhead_12mp"] = await overhead(client, args, large, "image/*")
        if not (args.scan or args.overhead):
            results["fanout_256"] = await fanout(client, args, small)
            results["throughput_rps_256"] = await batching(client, args, small)
    return results


def report(results: dict) -> str:
    lines = [f"model {results['model']} (archive batchSize {results['archive_batch_size']}), {results['date']}", ""]
    for key, label in (("scan_12mp", "colour"), ("scan_12mp_grey", "greyscale")):
        if key not in results:
            continue
        s = results[key]
        lines.append(
            f"12 MP {label} JPEG scan: one model, JPEG out, median {s['one_model']['median_ms']:.0f} ms "
            f"(p95 {s['one_model']['p95_ms']:.0f}) against a model pass of {s['model_pass']['median_ms']:.0f} ms "
            f"({s['one_model_added_ms']:.0f} ms added); all {s['models']} models "
            f"{s['all_models']['median_ms']:.0f} ms (p95 {s['all_models']['p95_ms']:.0f})"
        )
    if "overhead_256" not in results:
        return "\n".join(lines)
    for key, label in (("overhead_256", "256x256"), ("overhead_12mp", "12 MP (4000x3000)")):
        o = results[key]
        gateway = o["gateway"]
        lines.append(
            f"gateway overhead {label}: gateway median {gateway['median_ms']:.1f} ms / p95 {gateway['p95_ms']:.1f} ms, "
            f"TorchServe median {o['torchserve']['median_ms']:.1f} ms / p95 {o['torchserve']['p95_ms']:.1f} ms, "
            f"ratio of medians {o['median_ratio']:.3f}, median of paired ratios {o['paired_median_ratio']:.3f}, "
            f"p95 {o['p95_ratio']:.2f} ({o['overhead_ms']:.1f} ms added)"
        )
    if "fanout_256" not in results:
        return "\n".join(lines)
    f = results["fanout_256"]
    lines.append(
        f"fan-out of {f['models']} models: {f['all_ms']:.0f} ms; slowest single {f['slowest_ms']:.0f} ms "
        f"({f['all_over_slowest']:.2f}x); sum of singles {f['sum_ms']:.0f} ms ({f['all_over_sum']:.2f}x)"
    )
    for label, row in results["throughput_rps_256"].items():
        lines.append(f"throughput {label}: " + ", ".join(f"c={c}: {rps:.1f} req/s" for c, rps in row.items()))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateway", default="http://127.0.0.1:8000")
    parser.add_argument("--torchserve", default="http://127.0.0.1:8080")
    parser.add_argument("--management", default="http://127.0.0.1:8081")
    parser.add_argument("--model", default="zhang-eccv16")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0, help="per throughput measurement")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks.json"))
    parser.add_argument("--pairs", type=int, default=100, help="interleaved pairs of the gateway-overhead figures")
    parser.add_argument("--scan", action="store_true", help="only the 12-megapixel scan figures")
    parser.add_argument("--overhead", action="store_true", help="only the gateway-overhead figures")
    args = parser.parse_args()
    results = asyncio.run(main_async(args))
    if not (args.scan or args.overhead):  # quick checks; the file keeps the full record
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(report(results))


if __name__ == "__main__":
    main()
