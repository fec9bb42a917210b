"""Every event of the platform and every topic it travels on: the contract between services.

Events are frozen pydantic models with a common envelope. Each has a `type` tag, so one topic
can carry a few related events (the allocation topic carries server and model changes) and a
reader gets the right class back from its topic's `adapter()`. Field names are the wire format:
rename nothing without a new `schema_version`.

The modules hold the events by domain (envelope, inference, fleet, scaling, allocation, cost)
and the topics; import from `shared.events`, which re-exports every public name.
"""

from __future__ import annotations

from shared.events.allocation import (
    AllocationFailed,
    CapacityAdded,
    CapacityChanged,
    CapacityReleased,
    FleetRepaired,
    InstancesMoved,
    ModelLoaded,
    ModelUnloaded,
    RepricedServer,
    ServerAllocated,
    ServerReleased,
    SpotInterruptionNotice,
)
from shared.events.cost import (
    CapacityChangeRequested,
    CostRecommended,
    CostReported,
    CostReportRequested,
    GpuPrice,
    PricesPublished,
)
from shared.events.envelope import DeadLettered, Event
from shared.events.fleet import (
    AlertChanged,
    AlertState,
    DemandWindowReported,
    ScalingSignalRaised,
    ServerMetricsReported,
    Severity,
    SignalKind,
)
from shared.events.inference import (
    InferenceChunk,
    InferenceCompleted,
    InferenceRequested,
    ResultStatus,
    RoutingStrategy,
    Timings,
)
from shared.events.scaling import (
    ActionKind,
    DemandForecasted,
    ModelRequested,
    ScalingActionOverdue,
    ScalingActionRequested,
)
from shared.events.topics import (
    ALERTS,
    ALL_TOPICS,
    ALLOCATIONS,
    COST_RECOMMENDATIONS,
    COST_REPORTS,
    DEADLETTER,
    DEMAND,
    FORECASTS,
    INFERENCE_REQUESTS,
    INFERENCE_RESULTS,
    MODEL_REQUESTS,
    PRICES,
    SCALING_ACTIONS,
    SCALING_SIGNALS,
    SERVER_METRICS,
    USAGE,
    AllocationEvent,
    CostReportEvent,
    ScalingActionEvent,
    Topic,
)
from shared.events.usage import UsageMetered

__all__ = [
    "ALERTS",
    "ALLOCATIONS",
    "ALL_TOPICS",
    "COST_RECOMMENDATIONS",
    "COST_REPORTS",
    "DEADLETTER",
    "DEMAND",
    "FORECASTS",
    "INFERENCE_REQUESTS",
    "INFERENCE_RESULTS",
    "MODEL_REQUESTS",
    "PRICES",
    "SCALING_ACTIONS",
    "SCALING_SIGNALS",
    "SERVER_METRICS",
    "USAGE",
    "ActionKind",
    "AlertChanged",
    "AlertState",
    "AllocationEvent",
    "AllocationFailed",
    "CapacityAdded",
    "CapacityChangeRequested",
    "CapacityChanged",
    "CapacityReleased",
    "CostRecommended",
    "CostReportEvent",
    "CostReportRequested",
    "CostReported",
    "DeadLettered",
    "DemandForecasted",
    "DemandWindowReported",
    "Event",
    "FleetRepaired",
    "GpuPrice",
    "InferenceChunk",
    "InferenceCompleted",
    "InferenceRequested",
    "InstancesMoved",
    "ModelLoaded",
    "ModelRequested",
    "ModelUnloaded",
    "PricesPublished",
    "RepricedServer",
    "ResultStatus",
    "RoutingStrategy",
    "ScalingActionEvent",
    "ScalingActionOverdue",
    "ScalingActionRequested",
    "ScalingSignalRaised",
    "ServerAllocated",
    "ServerMetricsReported",
    "ServerReleased",
    "Severity",
    "SignalKind",
    "SpotInterruptionNotice",
    "Timings",
    "Topic",
    "UsageMetered",
]
