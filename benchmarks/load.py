"""Load and soak benchmark of the running stack: steady load at several concurrencies, then a soak.

    .venv/bin/python benchmarks/load.py [--gateway URL] [--model zhang-eccv16] [--seconds 20] [--soak-seconds 60]
        [--quick] [--start-stack] [--out docs/benchmarks-load.json] [--docs docs/benchmarks.md]

Each scenario is a number of clients, each sending its next request as soon as the last one is answered, for a
fixed time (and never more than ``--max-requests`` in all): one model or all models (every automatic model: one
that needs a colour reference answers ``needs_reference`` for itself, as expected), a 256x256 photo or a
12-megapixel scan (JPEG). It prints requests, throughput, p50/p95/p99 latency and every answer other than 200 by
status code, and the resident memory of every stack process (gateway, TorchServe frontend and workers) before
and after each soak. Loopback only: the script refuses other hosts. ``make bench-load`` starts the stack when it
is not running, runs this and stops what it started.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import ipaddress
import json
import platform
import re
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import httpx
import numpy as np
import psutil
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
DOCS_BEGIN, DOCS_END = "<!-- load:begin -->", "<!-- load:end -->"
MAX_SECONDS = 600  # per scenario, whatever is asked
# Processes of the local stack, by what their command line holds.
STACK_PROCESSES = {
    "gateway": re.compile(r"-m gateway\b"),
    "torchserve frontend": re.compile(r"org\.pytorch\.serve\.ModelServer"),
    "torchserve worker": re.compile(r"model_service_worker"),
}


@dataclass
class Scenario:
    name: str
    photo: str  # "small" or "scan"
    model: str  # a model id or "all"
    clients: int
    seconds: float
    soak: bool = False


@dataclass
class Outcome:
    scenario: Scenario
    requests: int
    seconds: float
    throughput: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    errors: dict[str, int]
    memory_before_mib: dict[str, float] = field(default_factory=dict)
    memory_after_mib: dict[str, float] = field(default_factory=dict)


def photo(width: int, height: int) -> bytes:
    """A smooth synthetic grey photo as JPEG q90 (decoding cost like a real scan's)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    grey = 0.5 + 0.25 * np.sin(x / width * 9.1) + 0.2 * np.cos(y / height * 5.3)
    buffer = io.BytesIO()
    Image.fromarray((grey * 255).astype(np.uint8)).convert("RGB").save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def scenarios(args: argparse.Namespace) -> list[Scenario]:
    s, model = args.seconds, args.model
    plan = [
        *(Scenario(f"small, one model, {c} clients", "small", model, c, s) for c in (1, 4, 16)),
        *(Scenario(f"small, all models, {c} clients", "small", "all", c, s) for c in (1, 4, 16)),
        *(Scenario(f"12 MP scan, one model, {c} clients", "scan", model, c, s) for c in (1, 4)),
        Scenario("12 MP scan, all models, 1 client", "scan", "all", 1, s),
        Scenario("soak: small, one model, 16 clients", "small", model, 16, args.soak_seconds, soak=True),
        Scenario("soak: small, all models, 16 clients", "small", "all", 16, args.soak_seconds, soak=True),
    ]
    return [p for p in plan if p.soak or not args.quick or p.clients in (1, 16)]


def stack_memory() -> dict[str, float]:
    """Resident memory (MiB) of each stack process, keyed by role and pid."""
    found = {}
    for process in psutil.process_iter(["pid", "cmdline", "memory_info"]):
        command = " ".join(process.info["cmdline"] or [])
        for role, pattern in STACK_PROCESSES.items():
            if pattern.search(command) and process.info["memory_info"]:
                found[f"{role} {process.info['pid']}"] = round(process.info["memory_info"].rss / 2**20, 1)
    return found


async def run(client: httpx.AsyncClient, gateway: str, scenario: Scenario, image: bytes, max_requests: int) -> Outcome:
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    deadline = time.monotonic() + min(scenario.seconds, MAX_SECONDS)
    budget = [max_requests]

    async def one_client() -> None:
        while time.monotonic() < deadline and budget[0] > 0:
            budget[0] -= 1
            started = time.perf_counter()
            try:
                response = await client.post(
                    f"{gateway}/v1/colorize",
                    files={"images": ("photo.jpg", image, "image/jpeg")},
                    data={"model": scenario.model},
                )
                status = str(response.status_code)
                if response.status_code == 200 and scenario.model == "all":
                    outputs = response.json()["files"][0]["outputs"]  # a model that needs a reference is told so
                    failed = [o for o in outputs if o["status"] != "ok" and o["error"]["code"] != "needs_reference"]
                    status = f"200 with {len(failed)} models failed" if failed else status
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            latencies.append(time.perf_counter() - started)
            if status != "200":
                errors[status] += 1

    before = stack_memory() if scenario.soak else {}
    started = time.monotonic()
    await asyncio.gather(*(one_client() for _ in range(scenario.clients)))
    elapsed = time.monotonic() - started
    after = stack_memory() if scenario.soak else {}
    ordered = sorted(latencies)

    def percentile(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000, 1)

    return Outcome(
        scenario, len(latencies), round(elapsed, 1), round(len(latencies) / elapsed, 2),
        round(statistics.median(ordered) * 1000, 1), percentile(0.95), percentile(0.99), dict(errors), before, after,
    )


def report(outcomes: list[Outcome], meta: dict) -> str:
    lines = [
        f"Run {meta['date']} on {meta['machine']}, `{' '.join(['benchmarks/load.py', meta['arguments']]).strip()}` "
        f"(model `{meta['model']}`; raw figures in [benchmarks-load.json](benchmarks-load.json)).",
        "",
        "| scenario | seconds | requests | requests/s | p50 ms | p95 ms | p99 ms | not 200 |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for o in outcomes:
        errors = ", ".join(f"{code}: {n}" for code, n in sorted(o.errors.items())) or "none"
        lines.append(
            f"| {o.scenario.name} | {o.seconds:g} | {o.requests} | {o.throughput:g} | {o.p50_ms:g} | {o.p95_ms:g} "
            f"| {o.p99_ms:g} | {errors} |"
        )
    soaks = [o for o in outcomes if o.scenario.soak]
    if soaks:
        lines += ["", "Resident memory of each process before and after each soak (MiB):", ""]
        lines += ["| soak | process | before | after | change |", "|---|---|---:|---:|---:|"]
        for o in soaks:
            for name in sorted(set(o.memory_before_mib) | set(o.memory_after_mib)):
                before, after = o.memory_before_mib.get(name), o.memory_after_mib.get(name)
                change = f"{after - before:+.1f}" if before is not None and after is not None else "started/ended"
                lines.append(f"| {o.scenario.name} | {name} | {before or '-'} | {after or '-'} | {change} |")
    return "\n".join(lines)


def write_docs(path: Path, table: str) -> None:
    """Replace the load section of the benchmarks page (between its markers), or append one."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    section = f"{DOCS_BEGIN}\n{table}\n{DOCS_END}"
    if DOCS_BEGIN in text:
        text = re.sub(re.escape(DOCS_BEGIN) + ".*?" + re.escape(DOCS_END), lambda _: section, text, flags=re.S)
    else:
        text = text.rstrip() + f"\n\n## Load and soak\n\n{section}\n"
    path.write_text(text)


def require_loopback(url: str) -> None:
    host = urlparse(url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        sys.exit(f"load: {url} is not a loopback address; this benchmark only loads a local stack")


def gateway_up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=3).status_code == 200
    except httpx.HTTPError:
        return False


async def main_async(args: argparse.Namespace) -> list[Outcome]:
    images = {"small": photo(256, 256), "scan": photo(4000, 3000)}
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    outcomes = []
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        for scenario in scenarios(args):
            outcome = await run(client, args.gateway, scenario, images[scenario.photo], args.max_requests)
            errors = ", ".join(f"{k}: {v}" for k, v in outcome.errors.items()) or "no errors"
            print(
                f"{scenario.name:40s} {outcome.requests:6d} requests {outcome.throughput:7.2f}/s  "
                f"p50 {outcome.p50_ms:7.1f}  p95 {outcome.p95_ms:7.1f}  p99 {outcome.p99_ms:7.1f} ms  {errors}",
                flush=True,
            )
            outcomes.append(outcome)
    return outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateway", default="http://127.0.0.1:8000")
    parser.add_argument("--model", default="zhang-eccv16", help="the model of the one-model scenarios")
    parser.add_argument("--seconds", type=float, default=20, help="per scenario")
    parser.add_argument("--soak-seconds", type=float, default=60)
    parser.add_argument("--max-requests", type=int, default=20_000, help="per scenario, whatever the time")
    parser.add_argument("--quick", action="store_true", help="only 1 and 16 clients")
    parser.add_argument("--start-stack", action="store_true", help="`make up` first when no stack answers")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks-load.json")
    parser.add_argument("--docs", type=Path, default=REPO / "docs" / "benchmarks.md")
    args = parser.parse_args()
    require_loopback(args.gateway)
    started_stack = False
    if not gateway_up(args.gateway):
        if not args.start_stack:
            sys.exit(f"load: no ready gateway at {args.gateway}; run `make up` first (or pass --start-stack)")
        subprocess.run([sys.executable, str(REPO / "deploy" / "stack.py"), "up"], check=True, cwd=REPO)
        started_stack = True
        deadline = time.monotonic() + 300
        while not gateway_up(args.gateway):
            if time.monotonic() > deadline:
                sys.exit("load: the stack did not become ready within 5 minutes")
            time.sleep(2)
    try:
        outcomes = asyncio.run(main_async(args))
    finally:
        if started_stack:
            subprocess.run([sys.executable, str(REPO / "deploy" / "stack.py"), "down"], check=False, cwd=REPO)
    meta = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{psutil.cpu_count()} CPUs, {psutil.virtual_memory().total / 2**30:.0f} GiB, {platform.machine()}",
        "arguments": " ".join(sys.argv[1:]),
        "model": args.model,
    }
    args.out.write_text(json.dumps({"meta": meta, "outcomes": [asdict(o) for o in outcomes]}, indent=1) + "\n")
    table = report(outcomes, meta)
    write_docs(args.docs, table)
    print("\n" + table)


if __name__ == "__main__":
    main()
