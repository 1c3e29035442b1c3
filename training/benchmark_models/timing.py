"""Wall-clock timing of repeated calls, summarised as median, p95 and best in milliseconds."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


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
