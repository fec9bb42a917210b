"""The gateway's Prometheus metrics (`llmfleet_gateway_*`), on the app's own registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class GatewayMetrics:
    """Requests by endpoint and HTTP status, their latency and its stages, throttling, requests waiting."""

    def observe(self, stage: str, seconds: float) -> None:
        """One stage of one call."""
        self.stage.labels(stage).observe(seconds)

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "llmfleet_gateway_requests", "API requests answered", ["endpoint", "status"], registry=registry
        )
        self.latency = Histogram(
            "llmfleet_gateway_request_latency_seconds",
            "time from the HTTP request to its answer",
            ["endpoint"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=registry,
        )
        self.throttled = Counter(
            "llmfleet_gateway_throttled", "requests refused by a limit", ["limit"], registry=registry
        )
        self.stage = Histogram(
            "llmfleet_gateway_stage_seconds",
            "a call's time by stage: admit (limits), fleet (Kafka, router, Triton), settle (usage written)",
            ["stage"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
            registry=registry,
        )
        self.waiting = Gauge("llmfleet_gateway_waiting", "requests sent and waiting for a result", registry=registry)
