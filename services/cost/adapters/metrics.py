"""The cost service's Prometheus metrics (one registry per app)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.cost.domain.cycle import Evaluation
from shared.events import CostRecommended, CostReported


class ObservedCycle(Protocol):
    """What the metrics read of a cycle's result (reporting.CycleResult); adapters do not import use cases."""

    @property
    def report(self) -> CostReported: ...

    @property
    def evaluation(self) -> Evaluation: ...

    @property
    def announced(self) -> Sequence[CostRecommended]: ...

    @property
    def open_savings_by_kind(self) -> Mapping[str, float]: ...


class CostMetrics:
    """Gauges of the last report, counters of what was announced."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.fleet_per_hour = Gauge(
            "llmfleet_cost_fleet_per_hour",
            "Fleet cost in dollars per hour",
            ["region", "gpu_type", "pricing_class"],
            registry=registry,
        )
        self.per_1k_tokens = Gauge(
            "llmfleet_cost_per_1k_tokens", "Dollars per 1,000 tokens (in + out)", ["model"], registry=registry
        )
        self.savings = Gauge(
            "llmfleet_cost_recommended_savings_per_month",
            "Monthly savings of the open recommendations",
            ["kind"],
            registry=registry,
        )
        self.reports = Counter("llmfleet_cost_reports", "Cost reports sent", ["trigger"], registry=registry)
        self.recommendations = Counter(
            "llmfleet_cost_recommendations", "Recommendations announced", ["kind"], registry=registry
        )
        self.cycle_seconds = Histogram(
            "llmfleet_cost_cycle_seconds", "Time of one report and recommendation cycle", registry=registry
        )

    def observe(self, result: ObservedCycle, seconds: float) -> None:
        """Reflect one cycle: gauges show the latest report only (labels that vanished are dropped)."""
        self.fleet_per_hour.clear()
        for (region, gpu_type, pricing_class), value in result.evaluation.cost.by_pool.items():
            self.fleet_per_hour.labels(region, gpu_type, pricing_class).set(value)
        self.per_1k_tokens.clear()
        for model, value in result.evaluation.per_1k_tokens.items():
            self.per_1k_tokens.labels(model).set(value)
        self.savings.clear()
        for kind, value in result.open_savings_by_kind.items():
            self.savings.labels(kind).set(value)
        self.reports.labels(result.report.trigger).inc()
        for event in result.announced:
            self.recommendations.labels(event.kind).inc()
        self.cycle_seconds.observe(seconds)
