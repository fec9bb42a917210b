"""The cost service's intake: one transaction per event, applied once (inbox keyed by handler)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from services.cost.adapters.repository import CostRepository, Database, cost_store
from services.cost.domain.chargeback import price_usage
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
    UsageMetered,
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


async def record_usage(sessions: Database, consumer: str, event: UsageMetered, now: datetime) -> bool:
    """Add a tenant's metered usage to the chargeback once, priced at the latest report's cost per 1,000 tokens."""
    async with cost_store(sessions).transaction() as repo:
        if not await repo.first_delivery(consumer, event.event_id):
            return False
        if not event.requests:
            return False  # only refusals over a budget: nothing ran, nothing to charge
        report = (await repo.latest_report_body() or {}).get("report", {})
        tokens = event.prompt_tokens + event.completion_tokens
        priced = price_usage(event.model_id, tokens, event.period_end, report.get("per_1k_tokens") or {})
        await repo.add_usage(event, priced, now)
    return True
