"""Prometheus metrics of one service (its own registry, so several apps in one process,
as in the tests, never share counters)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class Metrics:
    """Requests and latency per endpoint and status, requests in flight, batch sizes."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "plait_requests",
            "HTTP requests answered, by endpoint and status",
            ["endpoint", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "plait_request_seconds",
            "Time from the request's arrival to its answer, by endpoint and status",
            ["endpoint", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "plait_requests_in_flight", "Requests being answered now", registry=self.registry
        )
        self.batch_rows = Histogram(
            "plait_batch_rows",
            "Rows per model call (micro-batching), by endpoint",
            ["endpoint"],
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )

    def observe(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint, method, str(status)).inc()
        self.latency.labels(endpoint, str(status)).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
