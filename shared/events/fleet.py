"""What the fleet reports: demand windows, server metrics, alerts and scaling signals."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import Field

from shared.events.envelope import Event


class DemandWindowReported(Event):
    """The router's count of one model's traffic in one region over one window."""

    type: Literal["demand_window_reported"] = "demand_window_reported"
    model_id: str
    region: str
    window_start: datetime
    window_end: datetime
    requests: int = Field(ge=0)
    ok: int = Field(default=0, ge=0)
    rejected: int = Field(default=0, ge=0)
    failed: int = Field(default=0, ge=0)
    tokens_in: int = Field(default=0, ge=0)
    tokens_out: int = Field(default=0, ge=0)
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    latency_p99_ms: float | None = None
    batches: int = Field(default=0, ge=0)


class ServerMetricsReported(Event):
    """The monitor's aggregate for one server (and model) over a sliding window."""

    type: Literal["server_metrics_reported"] = "server_metrics_reported"
    server_id: str
    model_id: str | None = None
    region: str
    gpu_type: str
    window_s: float
    utilization: float = Field(ge=0.0, le=1.0)
    utilization_derived: bool = Field(description="true when computed from busy time (emulated GPU)")
    queue_depth: float = 0.0
    requests_ok: int = 0
    requests_failed: int = 0
    throughput_rps: float = 0.0
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    latency_p99_ms: float | None = None
    cost_per_token: float | None = None
    error_rate: float | None = Field(default=None, ge=0.0, le=1.0, description="failed / all requests")
    latency_avg_ms: float | None = Field(default=None, description="mean request time Triton measured")
    gpu_memory_used_fraction: float | None = Field(default=None, ge=0.0, le=1.0, description="None: no GPU gauge")


class AlertState(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


class Severity(StrEnum):
    INFO = "info"
    HIGH = "high"
    CRITICAL = "critical"


class AlertChanged(Event):
    """An alert started firing or resolved."""

    type: Literal["alert_changed"] = "alert_changed"
    alert_id: str
    rule: str
    severity: Severity
    state: AlertState
    value: float
    threshold: float
    scope: dict[str, str]
    message: str = ""


class SignalKind(StrEnum):
    SCALE_UP = "scale_up"
    SCALE_DOWN = "scale_down"
    ADD_SERVERS = "add_servers"
    ADD_INSTANCES = "add_instances"


class ScalingSignalRaised(Event):
    """The monitor's hint to the scaler; the scaler decides."""

    type: Literal["scaling_signal_raised"] = "scaling_signal_raised"
    kind: SignalKind
    model_id: str | None = None
    server_id: str | None = None
    region: str | None = None
    gpu_type: str | None = Field(default=None, description="the GPU type the signal is about; None: every type")
    metric: str
    value: float
    threshold: float
    factor: float = Field(description="suggested relative change, e.g. 0.25 for +25%")
    target: float | None = Field(default=None, description="the value the change should bring the metric to")
