"""Queuing a scaling action: recorded as pending and announced in the caller's transaction."""

from __future__ import annotations

from datetime import datetime

from services.scaler.adapters.repository import ScalerRepository
from services.scaler.domain.planner import PlannedAction
from shared.events import SCALING_ACTIONS, ScalingActionRequested

SOURCE = "scaler"


async def queue_action(
    repo: ScalerRepository, action: PlannedAction, action_id: str, now: datetime
) -> ScalingActionRequested:
    """Record an action and put its event in the outbox, in the caller's transaction."""
    await repo.save_action(action, action_id, now)
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
    await repo.announce(SCALING_ACTIONS, requested, key=action.model_id)
    return requested
