"""The scaler's Prometheus metrics (names `llmfleet_scaler_*`), on the app's own registry."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.scaler.domain.planner import ModelPlan
from services.scaler.domain.tiers import Tier
from shared.events import DemandForecasted, ScalingActionOverdue, ScalingActionRequested


class ObservedEvaluation(Protocol):
    """What the metrics read of a round's result (evaluation.Evaluation); adapters do not import use cases."""

    @property
    def plans(self) -> Sequence[ModelPlan]: ...

    @property
    def forecasts(self) -> Sequence[DemandForecasted]: ...

    @property
    def actions(self) -> Sequence[ScalingActionRequested]: ...

    @property
    def overdue(self) -> Sequence[ScalingActionOverdue]: ...


class ScalerMetrics:
    """Counters and gauges the scaler updates after each commit."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.actions = Counter(
            "llmfleet_scaler_actions_total", "Scaling actions requested", ["kind", "rule"], registry=registry
        )
        self.overdue = Counter(
            "llmfleet_scaler_actions_overdue_total", "Actions the allocator did not confirm in time", registry=registry
        )
        self.forecast_rph = Gauge(
            "llmfleet_scaler_forecast_requests_per_hour", "Forecast peak requests/hour, next hour", ["model"],
            registry=registry,
        )  # fmt: skip
        self.confidence = Gauge(
            "llmfleet_scaler_forecast_confidence", "Confidence of the latest forecast", ["model", "region"],
            registry=registry,
        )  # fmt: skip
        self.tier = Gauge(
            "llmfleet_scaler_model_tier", "1 for the model's current tier", ["model", "tier"], registry=registry
        )
        self.refusals = Counter(
            "llmfleet_scaler_allocation_refusals_total", "AllocationFailed answers from the allocator",
            ["model", "region"], registry=registry,
        )  # fmt: skip
        self.evaluation_seconds = Histogram(
            "llmfleet_scaler_evaluation_seconds", "Time of one evaluation round", registry=registry,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
        )  # fmt: skip

    def action(self, event: ScalingActionRequested) -> None:
        """Count one requested action."""
        self.actions.labels(kind=event.kind.value, rule=event.reason.split(" ", 1)[0].removeprefix("rule=")).inc()

    def refused(self, model_id: str, region: str) -> None:
        """Count one refusal by the allocator."""
        self.refusals.labels(model=model_id, region=region).inc()

    def evaluated(self, result: ObservedEvaluation, seconds: float) -> None:
        """Record one evaluation round's results."""
        self.evaluation_seconds.observe(seconds)
        for event in result.actions:
            self.action(event)
        self.overdue.inc(len(result.overdue))
        for plan in result.plans:
            self.forecast_rph.labels(model=plan.model_id).set(plan.total_rph)
            for tier in Tier:
                self.tier.labels(model=plan.model_id, tier=tier.value).set(1.0 if tier is plan.tier else 0.0)
        for forecast in result.forecasts:
            self.confidence.labels(model=forecast.model_id, region=forecast.region or "").set(forecast.confidence)
