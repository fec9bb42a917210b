"""What the other services report, recorded once per event (inbox keyed by handler), one transaction each."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from services.scaler.adapters.repository import Database, ScalerRepository, scaler_store
from services.scaler.domain.backoff import BackoffPolicy
from services.scaler.domain.measured import capacity_sample, update
from services.scaler.use_cases import feedback
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
    return await _once(sessions, consumer, event, lambda repo: repo.save_demand_window(event))


async def record_server_metrics(sessions: Database, consumer: str, event: ServerMetricsReported) -> bool:
    """Keep a server's latest utilisation and learn the model's measured capacity from it; False on a redelivery."""
    return await _once(sessions, consumer, event, lambda repo: _apply_server_metrics(repo, event))


async def _apply_server_metrics(repo: ScalerRepository, event: ServerMetricsReported) -> None:
    await repo.save_utilization(event)
    if not event.model_id:
        return  # a server-wide row: its busy time is every model's, no one model's capacity
    sample = capacity_sample(event.throughput_rps, event.utilization, event.requests_ok)
    if sample is None:
        return
    previous = await repo.measured_capacity(event.model_id, event.gpu_type)
    await repo.save_measured_capacity(event.model_id, event.gpu_type, update(previous, sample, event.occurred_at))


async def record_signal(sessions: Database, consumer: str, event: ScalingSignalRaised) -> bool:
    """Keep a monitor signal for the next evaluation; False on a redelivery."""
    return await _once(sessions, consumer, event, lambda repo: repo.save_signal(event))


async def record_allocation(
    sessions: Database, consumer: str, event: Event, now: datetime, backoff: BackoffPolicy
) -> bool:
    """Track placements, close the actions the allocator answered, count its refusals; False on a redelivery."""
    return await _once(sessions, consumer, event, lambda repo: _apply_allocation(repo, event, now, backoff))


async def _once(
    sessions: Database, consumer: str, event: Event, apply: Callable[[ScalerRepository], Awaitable[None]]
) -> bool:
    """Apply `event` in one transaction unless this consumer's inbox has seen it; True when applied."""
    async with scaler_store(sessions).transaction() as repo:
        if not await repo.first_delivery(consumer, event.event_id):
            return False
        await apply(repo)
        return True


async def _apply_allocation(repo: ScalerRepository, event: Event, now: datetime, backoff: BackoffPolicy) -> None:
    await _track_placement(repo, event)
    action_id: str | None = getattr(event, "action_id", None)
    if isinstance(event, AllocationFailed):
        if action_id is None or not await repo.resolve_action(action_id, "failed", now):
            await repo.fail_pending(event.model_id, event.region, now)
        await feedback.note_refusal(repo, event, backoff, now)
    elif action_id is not None:
        await repo.resolve_action(action_id, "confirmed", now)
    if isinstance(event, ModelLoaded):  # with or without an action: the capacity was there
        await feedback.note_success(repo, event, backoff, now)


async def _track_placement(repo: ScalerRepository, event: Event) -> None:
    if isinstance(event, ModelLoaded):
        await repo.place(event)
    elif isinstance(event, ModelUnloaded):
        await repo.unplace(event.server_id, event.model_id)
    elif isinstance(event, ServerReleased):
        await repo.unplace(event.server_id)  # whatever it held went with it
