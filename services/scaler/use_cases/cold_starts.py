"""A request for a model placed nowhere in its region: preload it at once, unless a preload is pending
or the allocator has just refused the model there (backoff)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from services.scaler.adapters.repository import Database, scaler_store
from services.scaler.domain.backoff import BackoffPolicy, may_ask
from services.scaler.domain.planner import cold_start
from services.scaler.use_cases.actions import queue_action
from shared.events import ModelRequested, ScalingActionRequested


async def request_cold_start(
    sessions: Database,
    consumer: str,
    event: ModelRequested,
    policy: str,
    now: datetime,
    action_id: str,
    backoff: BackoffPolicy,
) -> ScalingActionRequested | None:
    """Turn waiting requests for an unplaced model into a high-priority preload, unless one is pending
    or the allocator's recent refusals there hold it back."""
    async with scaler_store(sessions).transaction() as repo:
        if not await repo.first_delivery(consumer, event.event_id):
            return None
        instances = await repo.instances(event.model_id, event.region)
        pending = await repo.has_pending(event.model_id, event.region)
        action = cold_start(event.model_id, event.region, instances, pending, policy)
        if action is None:
            return None
        refusals = await repo.refusals_of(event.model_id, event.region)
        if not may_ask(refusals, action.kind, now, backoff):
            return None  # the allocator refused the model here lately: the backoff says when to ask again
        action = replace(action, extra={"pending_requests": float(event.pending_requests)})
        return await queue_action(repo, action, action_id, now)
