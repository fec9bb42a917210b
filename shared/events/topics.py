"""Every topic: its versioned name, its partition count and the events it may carry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Generic, Union

from pydantic import Field, TypeAdapter
from typing_extensions import TypeVar

from shared.events.allocation import (
    AllocationFailed,
    CapacityAdded,
    CapacityChanged,
    CapacityReleased,
    FleetRepaired,
    InstancesMoved,
    ModelLoaded,
    ModelUnloaded,
    ServerAllocated,
    ServerReleased,
    SpotInterruptionNotice,
)
from shared.events.cost import (
    CapacityChangeRequested,
    CostRecommended,
    CostReported,
    CostReportRequested,
    PricesPublished,
)
from shared.events.envelope import DeadLettered, Event
from shared.events.fleet import AlertChanged, DemandWindowReported, ScalingSignalRaised, ServerMetricsReported
from shared.events.inference import InferenceCompleted, InferenceRequested
from shared.events.scaling import DemandForecasted, ModelRequested, ScalingActionOverdue, ScalingActionRequested
from shared.events.usage import UsageMetered

# Covariant, so a Topic[ServerAllocated | ModelLoaded] is a Topic[Event] where any topic will do;
# the default keeps a bare `Topic` annotation meaning "a topic of some events".
E_co = TypeVar("E_co", bound=Event, covariant=True, default=Event)


@dataclass(frozen=True)
class Topic(Generic[E_co]):
    """A versioned topic, its partition count, and the events it may carry."""

    name: str
    partitions: int
    events: tuple[type[E_co], ...]

    def adapter(self) -> TypeAdapter[Any]:
        """A validator that returns the right event class for any message of this topic."""
        if len(self.events) == 1:
            return TypeAdapter(self.events[0])
        return TypeAdapter(Annotated[Union[self.events], Field(discriminator="type")])  # type: ignore[arg-type]  # noqa: UP007


ScalingActionEvent = ScalingActionRequested | ScalingActionOverdue | CapacityChangeRequested
AllocationEvent = (
    ServerAllocated
    | ModelLoaded
    | ModelUnloaded
    | ServerReleased
    | AllocationFailed
    | FleetRepaired
    | SpotInterruptionNotice
    | InstancesMoved
    | CapacityChanged
    | CapacityAdded
    | CapacityReleased
)
CostReportEvent = CostReported | CostReportRequested

INFERENCE_REQUESTS = Topic("inference.requests.v1", 8, (InferenceRequested,))
INFERENCE_RESULTS = Topic("inference.results.v1", 8, (InferenceCompleted,))
DEMAND = Topic("fleet.demand.v1", 4, (DemandWindowReported,))
SERVER_METRICS = Topic("fleet.server-metrics.v1", 4, (ServerMetricsReported,))
ALERTS = Topic("fleet.alerts.v1", 2, (AlertChanged,))
SCALING_SIGNALS = Topic("fleet.scaling-signals.v1", 4, (ScalingSignalRaised,))
FORECASTS = Topic("fleet.forecasts.v1", 4, (DemandForecasted,))
SCALING_ACTIONS: Topic[ScalingActionEvent] = Topic(
    "fleet.scaling-actions.v1", 4, (ScalingActionRequested, ScalingActionOverdue, CapacityChangeRequested)
)
MODEL_REQUESTS = Topic("fleet.model-requests.v1", 4, (ModelRequested,))
ALLOCATIONS: Topic[AllocationEvent] = Topic(
    "fleet.allocations.v1",
    4,
    (
        ServerAllocated,
        ModelLoaded,
        ModelUnloaded,
        ServerReleased,
        AllocationFailed,
        FleetRepaired,
        SpotInterruptionNotice,
        InstancesMoved,
        CapacityChanged,
        CapacityAdded,
        CapacityReleased,
    ),
)
PRICES = Topic("fleet.prices.v1", 1, (PricesPublished,))
COST_REPORTS: Topic[CostReportEvent] = Topic("fleet.cost-reports.v1", 1, (CostReported, CostReportRequested))
COST_RECOMMENDATIONS = Topic("fleet.cost-recommendations.v1", 2, (CostRecommended,))
DEADLETTER = Topic("fleet.deadletter.v1", 1, (DeadLettered,))
# The gateway's metering per tenant x model (keyed by tenant id): the cost service and the monitor read it.
USAGE = Topic("fleet.usage.v1", 4, (UsageMetered,))

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
    USAGE,
)
