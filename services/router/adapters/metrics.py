"""The router's Prometheus metrics (names `llmfleet_router_*`), on the app's own registry."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64)
LATENCY_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass(frozen=True)
class RouterMetrics:
    """Every metric the router exports."""

    requests: Counter
    batch_size: Histogram
    queue_depth: Gauge
    latency: Histogram
    overhead: Histogram
    inflight_batches: Gauge
    servers: Gauge
    triton_failures: Counter
    held: Gauge
    paused: Gauge
    repeats_skipped: Counter


def router_metrics(registry: CollectorRegistry) -> RouterMetrics:
    """Create the router's metrics on `registry`."""
    return RouterMetrics(
        requests=Counter(
            "llmfleet_router_requests", "Requests finished, by model and status", ["model", "status"], registry=registry
        ),
        batch_size=Histogram(
            "llmfleet_router_batch_size", "Rows per batch sent to Triton", buckets=BATCH_SIZES, registry=registry
        ),
        queue_depth=Gauge(
            "llmfleet_router_queue_depth", "Requests waiting or in flight, by model", ["model"], registry=registry
        ),
        latency=Histogram(
            "llmfleet_router_request_latency_seconds",
            "From the request's occurred_at to its result",
            buckets=LATENCY_S,
            registry=registry,
        ),
        overhead=Histogram(
            "llmfleet_router_overhead_seconds",
            "Router processing time: total minus Kafka queueing, batch wait and Triton time",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1),
            registry=registry,
        ),
        inflight_batches=Gauge("llmfleet_router_inflight_batches", "Batches sent and not back", registry=registry),
        servers=Gauge("llmfleet_router_servers", "Known Triton servers by health", ["state"], registry=registry),
        triton_failures=Counter(
            "llmfleet_router_triton_failures", "Failed Triton calls, by server", ["server"], registry=registry
        ),
        held=Gauge("llmfleet_router_held_requests", "Requests read and not yet answered", registry=registry),
        repeats_skipped=Counter(
            "llmfleet_router_repeats_skipped",
            "Requests a crashed owner had answered after its last commit, found in Kafka and not run again",
            registry=registry,
        ),
        paused=Gauge(
            "llmfleet_router_fetch_paused", "1 while the router is full and has stopped fetching", registry=registry
        ),
    )


class LabelBudget:
    """Model ids as metric labels, at most `limit` distinct ones (the rest are `_other`).

    Model ids come from producers; without a cap every new id is a new time series forever.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._seen: set[str] = set()

    def label(self, model_id: str) -> str:
        """The label to record `model_id` under."""
        if model_id in self._seen:
            return model_id
        if len(self._seen) < self.limit:
            self._seen.add(model_id)
            return model_id
        return "_other"
