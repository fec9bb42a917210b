"""The monitor's own Prometheus metrics: its health and the fleet aggregates it computes."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class MonitorMetrics:
    """Every metric the monitor exports, registered on the app's own registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
            return Gauge(f"llmfleet_monitor_{name}", doc, labels, registry=registry)

        self.alerts_firing = gauge("alerts_firing", "Alerts firing now", ("rule", "severity"))
        self.scrape_targets = gauge("scrape_targets", "Scrape targets by state (up/down)", ("state",))
        self.scrape_duration = Histogram(
            "llmfleet_monitor_scrape_duration_seconds",
            "Duration of one scrape round over every target (scrape, parse, store, publish)",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30),
            registry=registry,
        )
        self.gpu_utilization = gauge(
            "gpu_utilization", "GPU utilisation (derived on emulated GPUs)", ("server", "region", "gpu_type")
        )
        self.queue_depth = gauge("queue_depth", "Requests pending in Triton", ("server",))
        self.latency_p95_ms = gauge("latency_p95_ms", "Router p95 latency of the last window", ("model", "region"))
        self.cost_per_hour = gauge("cost_per_hour", "Fleet cost in $/h", ("region",))
        self.consumer_lag = gauge("consumer_lag", "Messages a consumer group is behind", ("group",))
        self.alert_changes = Counter(
            "llmfleet_monitor_alert_changes_total", "Alerts fired and resolved", ("rule", "state"), registry=registry
        )
        self.signals = Counter(
            "llmfleet_monitor_scaling_signals_total", "Scaling signals raised", ("kind",), registry=registry
        )

    def set_firing(self, counts: Mapping[tuple[str, str], int]) -> None:
        """Replace the firing-alert counts (rules that stopped firing drop to absent)."""
        self.alerts_firing.clear()
        for (rule, severity), count in counts.items():
            self.alerts_firing.labels(rule, severity).set(count)
