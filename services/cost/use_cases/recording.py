"""The cost service's intake: one transaction per event, applied once (inbox keyed by handler)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from services.cost.adapters.repository import CostRepository, Database, cost_store
from shared.events import (
    CapacityChanged,
    DemandForecasted,
    DemandWindowReported,
    Event,
    ModelLoaded,
    ModelUnloaded,
    ServerAllocated,
    ServerMetricsReported,
    ServerReleased,
)

Handler = Callable[[Event], Awaitable[None]]


async def record(sessions: Database, consumer: str, event: Event) -> bool:
    """Apply one fleet, metrics, demand or forecast event once; False for a redelivery or no-op."""
    async with cost_store(sessions).transaction() as repo:
        if not await repo.first_delivery(consumer, event.event_id):
            return False
        return await _apply(repo, event)


async def _apply(repo: CostRepository, event: Event) -> bool:
    if isinstance(event, ServerAllocated):
        await repo.record_allocation(event)
    elif isinstance(event, ModelLoaded):
        await repo.add_model(event.server_id, event.model_id)
    elif isinstance(event, ModelUnloaded):
        await repo.remove_model(event.server_id, event.model_id)
    elif isinstance(event, ServerReleased):
        await repo.release_server(event.server_id, event.occurred_at)
    elif isinstance(event, ServerMetricsReported):
        await repo.record_utilization(event)
    elif isinstance(event, DemandWindowReported):
        await repo.add_demand_window(event)
    elif isinstance(event, DemandForecasted):
        await repo.save_forecast(event)
    elif isinstance(event, CapacityChanged) and event.result == "applied":
        await repo.record_capacity(event)  # an operator's cost action, carried out: the next report shows it
    else:
        return False  # AllocationFailed and the like change no cost
    return True
