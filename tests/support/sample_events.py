"""One valid event of each kind the services consume, for wiring tests (the values do not matter)."""

from __future__ import annotations

from datetime import UTC, datetime

from shared.events import (
    ActionKind,
    CapacityChangeRequested,
    CostReported,
    CostReportRequested,
    DemandForecasted,
    DemandWindowReported,
    GpuPrice,
    ModelLoaded,
    ModelRequested,
    PricesPublished,
    ScalingActionOverdue,
    ScalingActionRequested,
    ScalingSignalRaised,
    ServerAllocated,
    ServerMetricsReported,
    SignalKind,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)
REGION = "us-east-1"


def demand_window(latency_p95_ms: float | None = 850.0) -> DemandWindowReported:
    """A router's demand window for model `m`."""
    return DemandWindowReported(
        source="router", model_id="m", region=REGION, window_start=NOW, window_end=NOW, requests=12, ok=12,
        latency_p95_ms=latency_p95_ms,
    )  # fmt: skip


def server_metrics() -> ServerMetricsReported:
    """The monitor's window of server `s1`."""
    return ServerMetricsReported(
        source="monitor", server_id="s1", model_id="m", region=REGION, gpu_type="A100", window_s=10.0,
        utilization=0.7, utilization_derived=True,
    )  # fmt: skip


def scaling_signal() -> ScalingSignalRaised:
    """A utilization-high signal for model `m`."""
    return ScalingSignalRaised(
        source="monitor", kind=SignalKind.SCALE_UP, model_id="m", region=REGION, metric="gpu_utilization",
        value=0.9, threshold=0.85, factor=0.25,
    )  # fmt: skip


def model_requested() -> ModelRequested:
    """The router asking for a model no server has."""
    return ModelRequested(source="router", model_id="m", region=REGION, pending_requests=3)


def forecast() -> DemandForecasted:
    """The scaler's forecast for model `m`."""
    return DemandForecasted(
        source="scaler", model_id="m", region=REGION, horizon_start=NOW, requests_per_hour=[100.0], confidence=0.8
    )


def action_requested() -> ScalingActionRequested:
    """A scale-up of model `m` from 1 to 2 instances."""
    return ScalingActionRequested(
        source="scaler", action_id="a1", model_id="m", region=REGION, kind=ActionKind.SCALE_UP,
        current_instances=1, target_instances=2, reason="utilization high",
    )  # fmt: skip


def action_overdue() -> ScalingActionOverdue:
    """The monitor's word that action `a1` waits too long."""
    return ScalingActionOverdue(
        source="monitor", action_id="a1", model_id="m", region=REGION, requested_at=NOW, waited_s=600.0
    )


def capacity_change() -> CapacityChangeRequested:
    """The cost service asking for two spot GPUs (for operators; it shares the actions topic)."""
    return CapacityChangeRequested(
        source="cost", request_id="r1", recommendation_id="c1", region=REGION, gpu_type="A100",
        changes={"spot": 2}, reason="cheaper",
    )  # fmt: skip


def server_allocated() -> ServerAllocated:
    """Server `s1` allocated."""
    return ServerAllocated(
        source="allocator", server_id="s1", endpoint="127.0.0.1:8000", metrics_url="http://127.0.0.1:8002/metrics",
        region=REGION, gpu_type="A100", cost_per_hour=4.0,
    )  # fmt: skip


def model_loaded() -> ModelLoaded:
    """Model `m` loaded on server `s1`."""
    return ModelLoaded(source="allocator", server_id="s1", model_id="m", region=REGION)


def prices() -> PricesPublished:
    """The cost service's price list, one GPU type."""
    price = GpuPrice(region=REGION, gpu_type="A100", on_demand_per_hour=4.0, spot_per_hour=1.5, reserved_per_hour=2.5)
    return PricesPublished(source="cost", prices=[price])


def report_requested() -> CostReportRequested:
    """An operator asking the cost service for a report now."""
    return CostReportRequested(source="cli", request_id="r1")


def cost_reported() -> CostReported:
    """The cost service's own report (it travels on the topic that carries requests)."""
    return CostReported(source="cost", total_per_hour=12.0)
