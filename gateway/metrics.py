"""Prometheus metrics of the gateway (served at /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

REQUESTS = Counter("gateway_requests_total", "Requests by API, method and outcome.", ["api", "method", "status"])
REQUEST_SECONDS = Histogram(
    "gateway_request_duration_seconds", "Whole-request latency.", ["api", "method"], buckets=LATENCY_BUCKETS
)
MODEL_SECONDS = Histogram(
    "gateway_model_duration_seconds",
    "Latency of one model on one image (backend call + merge + encode).",
    ["model", "status"],
    buckets=LATENCY_BUCKETS,
)
FANOUT_SECONDS = Histogram(
    "gateway_fanout_duration_seconds", "Latency of an all-models fan-out on one image.", buckets=LATENCY_BUCKETS
)
IN_FLIGHT = Gauge("gateway_in_flight_requests", "Colourisation requests being processed.")
ERRORS = Counter("gateway_errors_total", "Errors returned to clients, by error code.", ["code"])
BYTES = Counter("gateway_bytes_total", "Image bytes received and returned.", ["direction"])
BACKEND_RETRIES = Counter(
    "gateway_backend_retries_total", "Inferences sent again because the backend failed before answering.",
    ["model", "reason"],
)
CLIENT_REQUESTS = Counter(
    "gateway_client_requests_total",
    "Colourisation requests per API key (its fingerprint) by outcome: admitted, rate_limited, concurrency_limited.",
    ["client", "outcome"],
)
CLIENT_IN_FLIGHT = Gauge(
    "gateway_client_in_flight_requests", "Colourisation requests in progress per API key.", ["client"]
)
