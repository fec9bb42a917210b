"""Every event of the platform and every topic it travels on: the contract between services.

Events are frozen pydantic models with a common envelope. Each has a `type` tag, so one topic
can carry a few related events (the allocation topic carries server and model changes) and a
reader gets the right class back from `parse_event`. Field names are the wire format: rename
nothing without a new `schema_version`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter


def _now() -> datetime:
    return datetime.now(UTC)


class Event(BaseModel):
    """The envelope every event carries."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    occurred_at: datetime = Field(default_factory=_now)
    schema_version: int = 1
    source: str = Field(min_length=1, max_length=100)


# ---------------------------------------------------------------- inference requests and results


class RoutingStrategy(StrEnum):
    LATENCY_OPTIMIZED = "latency_optimized"
    COST_OPTIMIZED = "cost_optimized"
    BALANCED = "balanced"


class ResultStatus(StrEnum):
    OK = "ok"
    REJECTED = "rejected"
    FAILED = "failed"


class InferenceRequested(Event):
    """A client asks for a completion; keyed by request id.

    Forward compatible: fields this version does not know are ignored (a newer producer's optional
    fields), so the request is served; every other invalid request gets a `rejected` result.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    type: Literal["inference_requested"] = "inference_requested"
    request_id: str = Field(min_length=1, max_length=200)
    model_id: str = Field(min_length=1, max_length=200)
    prompt: str = Field(max_length=200_000)
    max_tokens: int = Field(default=64, ge=1, le=8192)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    priority: int = Field(default=0, ge=0, le=9, description="higher is served first")
    user_region: str = "us-east-1"
    routing_strategy: RoutingStrategy = RoutingStrategy.BALANCED
    deadline: datetime | None = None
    reply_topic: str | None = Field(default=None, min_length=1, max_length=249)
    fail_fast: bool = Field(
        default=False, description="reject at once when the model's queue is full, instead of waiting in Kafka"
    )


class Timings(BaseModel):
    """Where a request's time went, in milliseconds."""

    model_config = ConfigDict(frozen=True)

    queued_ms: float = 0.0
    batched_ms: float = 0.0
    inference_ms: float = 0.0
    total_ms: float = 0.0


class InferenceCompleted(Event):
    """The one result of a request: ok, rejected (with reason) or failed (with reason)."""

    type: Literal["inference_completed"] = "inference_completed"
    request_id: str
    model_id: str
    status: ResultStatus
    text: str = ""
    reason: str | None = None
    server_id: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    timings: Timings = Timings()


# ---------------------------------------------------------------- demand and metrics


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
    metric: str
    value: float
    threshold: float
    factor: float = Field(description="suggested relative change, e.g. 0.25 for +25%")
    target: float | None = Field(default=None, description="the value the change should bring the metric to")


# ---------------------------------------------------------------- capacity decisions


class DemandForecasted(Event):
    """The scaler's forecast for one model (and region), requests per hour over the horizon."""

    type: Literal["demand_forecasted"] = "demand_forecasted"
    model_id: str
    region: str | None = None
    horizon_start: datetime
    requests_per_hour: list[float]
    confidence: float = Field(ge=0.0, le=1.0)
    predictors: dict[str, float] = Field(default_factory=dict)
    bucket_s: int | None = Field(
        default=None, ge=1, description="seconds each requests_per_hour entry covers; None: one hour"
    )
    tier: Literal["hot", "warm", "cold"] | None = None


class ActionKind(StrEnum):
    SCALE_UP = "scale_up"
    SCALE_DOWN = "scale_down"
    PRELOAD = "preload"
    UNLOAD = "unload"


class ScalingActionRequested(Event):
    """The scaler's decision: bring one model in one region to `target_instances`."""

    type: Literal["scaling_action_requested"] = "scaling_action_requested"
    action_id: str
    model_id: str
    region: str
    kind: ActionKind
    current_instances: int = Field(ge=0)
    target_instances: int = Field(ge=0)
    priority: Literal["low", "medium", "high"] = "medium"
    reason: str
    rule: str | None = Field(default=None, description="the rule that fired, e.g. utilization_high")
    policy: str | None = None
    inputs: dict[str, float] = Field(default_factory=dict, description="utilization, forecast_rph, confidence...")


class ScalingActionOverdue(Event):
    """An action the allocator has not confirmed in time (the monitor alerts on it)."""

    type: Literal["scaling_action_overdue"] = "scaling_action_overdue"
    action_id: str
    model_id: str
    region: str
    requested_at: datetime
    waited_s: float


class ModelRequested(Event):
    """The router has requests for a model no server holds (cold start)."""

    type: Literal["model_requested"] = "model_requested"
    model_id: str
    region: str
    pending_requests: int = Field(ge=1)


class ServerAllocated(Event):
    """A Triton server is up and answering; keyed by model id when it was started for one."""

    type: Literal["server_allocated"] = "server_allocated"
    server_id: str
    endpoint: str = Field(description="Triton HTTP address, host:port")
    metrics_url: str
    region: str
    gpu_type: str
    gpu_count: int = 1
    cost_per_hour: float = Field(ge=0.0)
    pricing_class: Literal["on_demand", "spot", "reserved"] = "on_demand"
    capacity: int = Field(default=1, ge=1, description="batches it serves at once")
    action_id: str | None = None


class _ModelPlacementChanged(Event):
    server_id: str
    model_id: str
    region: str
    action_id: str | None = None


class ModelLoaded(_ModelPlacementChanged):
    """A model is loaded on a server and ready to serve."""

    type: Literal["model_loaded"] = "model_loaded"
    triton_model: str | None = Field(
        default=None, description="the model's name in the server's Triton repository; None: the model id"
    )
    instances: int | None = Field(default=None, ge=0, description="instances of the model on the server now")


class ModelUnloaded(_ModelPlacementChanged):
    """A model is no longer served by a server."""

    type: Literal["model_unloaded"] = "model_unloaded"


class ServerReleased(Event):
    type: Literal["server_released"] = "server_released"
    server_id: str
    region: str
    action_id: str | None = None


class AllocationFailed(Event):
    type: Literal["allocation_failed"] = "allocation_failed"
    model_id: str
    region: str
    reason: str
    action_id: str | None = None


# ---------------------------------------------------------------- cost


class GpuPrice(BaseModel):
    model_config = ConfigDict(frozen=True)

    region: str
    gpu_type: str
    on_demand_per_hour: float = Field(ge=0.0)
    spot_per_hour: float = Field(ge=0.0)
    reserved_per_hour: float = Field(ge=0.0)


class PricesPublished(Event):
    """The cost service's current price list (the monitor derives cost per token from it)."""

    type: Literal["prices_published"] = "prices_published"
    prices: list[GpuPrice]


class CostRecommended(Event):
    """A change that would cost less; applying it is an operator's decision."""

    type: Literal["cost_recommended"] = "cost_recommended"
    recommendation_id: str
    kind: Literal["spot", "reserved", "rightsize", "capacity_mix", "region_plan"]
    region: str | None = None
    gpu_type: str | None = None
    model_id: str | None = None
    summary: str
    savings_per_month: float
    evidence: dict[str, Any] = Field(default_factory=dict)


class CostReported(Event):
    """The fleet's cost now: per hour in all and by model, and per 1,000 tokens."""

    type: Literal["cost_reported"] = "cost_reported"
    total_per_hour: float
    by_model_per_hour: dict[str, float] = Field(default_factory=dict)
    per_1k_tokens: dict[str, float] = Field(default_factory=dict)
    report_id: str | None = None
    trigger: Literal["schedule", "on_demand"] = "schedule"
    requested_by: str | None = Field(default=None, description="request_id of the CostReportRequested it answers")
    by_region_per_hour: dict[str, float] = Field(default_factory=dict)
    by_gpu_type_per_hour: dict[str, float] = Field(default_factory=dict)
    by_pricing_class_per_hour: dict[str, float] = Field(default_factory=dict)
    servers: int = Field(default=0, ge=0, description="servers in the fleet snapshot the report prices")
    gpus: int = Field(default=0, ge=0)


class CostReportRequested(Event):
    """An operator asks the cost service for a report now (the answer is a CostReported)."""

    type: Literal["cost_report_requested"] = "cost_report_requested"
    request_id: str = Field(min_length=1, max_length=200)


class CapacityChangeRequested(Event):
    """An operator applied a cost recommendation: change a pool's GPUs per pricing class."""

    type: Literal["capacity_change_requested"] = "capacity_change_requested"
    request_id: str
    recommendation_id: str
    region: str
    gpu_type: str
    changes: dict[Literal["on_demand", "spot", "reserved"], int] = Field(
        description="GPUs to add (positive) or release (negative) per pricing class"
    )
    commitment_months: int | None = Field(default=None, description="for reserved GPUs bought")
    reason: str


# ---------------------------------------------------------------- dead letters


class DeadLettered(Event):
    """A message no consumer could read, kept with the reason and where it came from."""

    type: Literal["dead_lettered"] = "dead_lettered"
    reason: str
    consumer: str
    source_topic: str
    source_partition: int
    source_offset: int
    payload_b64: str = Field(description="the original bytes, base64")


# ---------------------------------------------------------------- topics


@dataclass(frozen=True)
class Topic:
    """A versioned topic, its partition count, and the events it may carry."""

    name: str
    partitions: int
    events: tuple[type[Event], ...]

    def adapter(self) -> TypeAdapter[Any]:
        """A validator that returns the right event class for any message of this topic."""
        if len(self.events) == 1:
            return TypeAdapter(self.events[0])
        return TypeAdapter(Annotated[Union[self.events], Field(discriminator="type")])  # type: ignore[arg-type]  # noqa: UP007


INFERENCE_REQUESTS = Topic("inference.requests.v1", 8, (InferenceRequested,))
INFERENCE_RESULTS = Topic("inference.results.v1", 8, (InferenceCompleted,))
DEMAND = Topic("fleet.demand.v1", 4, (DemandWindowReported,))
SERVER_METRICS = Topic("fleet.server-metrics.v1", 4, (ServerMetricsReported,))
ALERTS = Topic("fleet.alerts.v1", 2, (AlertChanged,))
SCALING_SIGNALS = Topic("fleet.scaling-signals.v1", 4, (ScalingSignalRaised,))
FORECASTS = Topic("fleet.forecasts.v1", 4, (DemandForecasted,))
SCALING_ACTIONS = Topic(
    "fleet.scaling-actions.v1", 4, (ScalingActionRequested, ScalingActionOverdue, CapacityChangeRequested)
)
MODEL_REQUESTS = Topic("fleet.model-requests.v1", 4, (ModelRequested,))
ALLOCATIONS = Topic(
    "fleet.allocations.v1", 4, (ServerAllocated, ModelLoaded, ModelUnloaded, ServerReleased, AllocationFailed)
)
PRICES = Topic("fleet.prices.v1", 1, (PricesPublished,))
COST_REPORTS = Topic("fleet.cost-reports.v1", 1, (CostReported, CostReportRequested))
COST_RECOMMENDATIONS = Topic("fleet.cost-recommendations.v1", 2, (CostRecommended,))
DEADLETTER = Topic("fleet.deadletter.v1", 1, (DeadLettered,))

ALL_TOPICS: tuple[Topic, ...] = (
    INFERENCE_REQUESTS,
    INFERENCE_RESULTS,
    DEMAND,
    SERVER_METRICS,
    ALERTS,
    SCALING_SIGNALS,
    FORECASTS,
    SCALING_ACTIONS,
    MODEL_REQUESTS,
    ALLOCATIONS,
    PRICES,
    COST_REPORTS,
    COST_RECOMMENDATIONS,
    DEADLETTER,
)
