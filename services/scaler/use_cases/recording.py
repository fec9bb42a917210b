"""What the other services report, recorded once per event (inbox keyed by handler), one transaction each."""

from __future__ import annotations

from datetime import datetime

from services.scaler.adapters.repository import Database, ScalerRepository, scaler_store
from shared.events import (
    AllocationFailed,
    DemandWindowReported,
    Event,
    ModelLoaded,
    ModelUnloaded,
    ScalingSignalRaised,
    ServerMetricsReported,
    ServerReleased,
)


async def record_demand_window(sessions: Database, consumer: str, event: DemandWindowReported) -> bool:
    """Store one demand window once; False when it was a redelivery and nothing changed."""
    async with scaler_store(sessions).transaction() as repo:
        if not await repo.first_delivery(consumer, event.event_id):
            return False
        await repo.save_demand_window(event)
        return True


async def record_server_metrics(sessions: Database, consumer: str, event: ServerMetricsReported) -> bool:
    """Keep a server's latest utilisation; False on a redelivery."""
    async with scaler_store(sessions).transaction() as repo:
        if not await repo.first_delivery(consumer, event.event_id):
            return False
        await repo.save_utilization(event)
        return True


async def record_signal(sessions: Database, consumer: str, event: ScalingSignalRaised) -> bool:
    """Keep a monitor signal for the next evaluation; False on a redelivery."""
    async with scaler_store(sessions).transaction() as repo:
        if not await repo.first_delivery(consumer, event.event_id):
            return False
        await repo.save_signal(event)
        return True


async def record_allocation(sessions: Database, consumer: str, event: Event, now: datetime) -> bool:
    """Track placements and close the actions the allocator answered; False on a redelivery."""
    async with scaler_store(sessions).transaction() as repo:
        if not await repo.first_delivery(consumer, event.event_id):
            return False
        await _track_placement(repo, event)
        action_id: str | None = getattr(event, "action_id", None)
        if isinstance(event, AllocationFailed):
            if action_id is None or not await repo.resolve_action(action_id, "failed", now):
                await repo.fail_pending(event.model_id, event.region, now)
        elif action_id is not None:
            await repo.resolve_action(action_id, "confirmed", now)
        return True


async def _track_placement(repo: ScalerRepository, event: Event) -> None:
    if isinstance(event, ModelLoaded):
        await repo.place(event)
    elif isinstance(event, ModelUnloaded):
        await repo.unplace(event.server_id, event.model_id)
    elif isinstance(event, ServerReleased):
        await repo.unplace(event.server_id)  # whatever it held went with it
