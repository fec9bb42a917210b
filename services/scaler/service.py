"""The scaler's service layer: one transaction per event."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.scaler.adapters import repository
from services.scaler.adapters.orm import inbox, outbox
from services.scaler.domain.planner import PlannedAction, cold_start
from shared.events import (
    SCALING_ACTIONS,
    AllocationFailed,
    DemandWindowReported,
    Event,
    ModelLoaded,
    ModelRequested,
    ModelUnloaded,
    ScalingActionRequested,
    ScalingSignalRaised,
    ServerMetricsReported,
    ServerReleased,
)
from shared.inbox import first_delivery
from shared.outbox import add_to_outbox

SOURCE = "scaler"


async def record_demand_window(
    sessions: async_sessionmaker[AsyncSession], consumer: str, event: DemandWindowReported
) -> bool:
    """Store one demand window once; False when it was a redelivery and nothing changed."""
    async with sessions.begin() as session:
        if not await first_delivery(session, inbox, consumer, event.event_id):
            return False
        await repository.save_demand_window(session, event)
        return True


async def record_server_metrics(
    sessions: async_sessionmaker[AsyncSession], consumer: str, event: ServerMetricsReported
) -> bool:
    """Keep a server's latest utilisation; False on a redelivery."""
    async with sessions.begin() as session:
        if not await first_delivery(session, inbox, consumer, event.event_id):
            return False
        await repository.save_utilization(session, event)
        return True


async def record_signal(sessions: async_sessionmaker[AsyncSession], consumer: str, event: ScalingSignalRaised) -> bool:
    """Keep a monitor signal for the next evaluation; False on a redelivery."""
    async with sessions.begin() as session:
        if not await first_delivery(session, inbox, consumer, event.event_id):
            return False
        await repository.save_signal(session, event)
        return True


async def record_allocation(
    sessions: async_sessionmaker[AsyncSession], consumer: str, event: Event, now: datetime
) -> bool:
    """Track placements and close the actions the allocator answered; False on a redelivery."""
    async with sessions.begin() as session:
        if not await first_delivery(session, inbox, consumer, event.event_id):
            return False
        if isinstance(event, ModelLoaded):
            await repository.place(session, event)
        elif isinstance(event, ModelUnloaded):
            await repository.unplace(session, event.server_id, event.model_id)
        elif isinstance(event, ServerReleased):
            await repository.unplace(session, event.server_id)  # whatever it held went with it
        action_id: str | None = getattr(event, "action_id", None)
        if isinstance(event, AllocationFailed):
            if action_id is None or not await repository.resolve_action(session, action_id, "failed", now):
                await repository.fail_pending(session, event.model_id, event.region, now)
        elif action_id is not None:
            await repository.resolve_action(session, action_id, "confirmed", now)
        return True


async def request_cold_start(
    sessions: async_sessionmaker[AsyncSession],
    consumer: str,
    event: ModelRequested,
    policy: str,
    now: datetime,
    action_id: str,
) -> ScalingActionRequested | None:
    """Turn waiting requests for an unplaced model into a high-priority preload, unless one is pending."""
    async with sessions.begin() as session:
        if not await first_delivery(session, inbox, consumer, event.event_id):
            return None
        instances = await repository.instances(session, event.model_id, event.region)
        pending = await repository.has_pending(session, event.model_id, event.region)
        action = cold_start(event.model_id, event.region, instances, pending, policy)
        if action is None:
            return None
        action = replace(action, extra={"pending_requests": float(event.pending_requests)})
        return await queue_action(session, action, action_id, now)


async def queue_action(
    session: AsyncSession, action: PlannedAction, action_id: str, now: datetime
) -> ScalingActionRequested:
    """Record an action and put its event in the outbox, in the caller's transaction."""
    await repository.save_action(session, action, action_id, now)
    requested = ScalingActionRequested(
        source=SOURCE,
        occurred_at=now,
        action_id=action_id,
        model_id=action.model_id,
        region=action.region,
        kind=action.kind,
        current_instances=action.current,
        target_instances=action.target,
        priority=action.priority,
        reason=action.reason(),
        rule=action.rule,
        policy=action.policy,
        inputs=action.inputs(),
    )
    await add_to_outbox(session, outbox, SCALING_ACTIONS, requested, key=action.model_id)
    return requested
