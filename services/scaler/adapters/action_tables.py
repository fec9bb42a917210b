"""The scaler's decisions: actions and their answers, and model tiers."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import case, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.scaler.adapters.orm import model_tier, scaling_action
from services.scaler.domain.planner import PlannedAction
from services.scaler.domain.tiers import Tier
from shared.events import ActionKind

Key = tuple[str, str]  # (model id, region)
PENDING = "pending"


class ActionTables:
    """SQL of actions and tiers (part of the SQL repository; the caller owns the transaction)."""

    _session: AsyncSession

    async def save_action(self, action: PlannedAction, action_id: str, now: datetime) -> None:
        """Record a decision with its inputs, as pending."""
        await self._session.execute(
            scaling_action.insert().values(
                action_id=action_id,
                model_id=action.model_id,
                region=action.region,
                kind=action.kind.value,
                current_instances=action.current,
                target_instances=action.target,
                priority=action.priority,
                rule=action.rule,
                policy=action.policy,
                tier=action.tier.value,
                utilization=action.utilization,
                forecast_rph=action.predicted_rph,
                confidence=action.confidence,
                reason=action.reason(),
                status=PENDING,
                requested_at=now,
            )
        )

    async def resolve_action(self, action_id: str, status: str, at: datetime) -> bool:
        """Close an open action as confirmed or failed; False when there was none to close.

        A confirmation also overrides an earlier failure (the model did get loaded after all); a
        failure never overrides a confirmation.
        """
        closable = [PENDING, "overdue", "failed"] if status == "confirmed" else [PENDING, "overdue"]
        result = await self._session.execute(
            update(scaling_action)
            .where(scaling_action.c.action_id == action_id, scaling_action.c.status.in_(closable))
            .values(status=status, resolved_at=at)
            .returning(scaling_action.c.action_id)
        )
        return result.first() is not None

    async def action_kind(self, action_id: str) -> ActionKind | None:
        """The kind of a recorded action; None when the scaler did not ask for it."""
        query = select(scaling_action.c.kind).where(scaling_action.c.action_id == action_id)
        kind = (await self._session.execute(query)).scalar_one_or_none()
        return None if kind is None else ActionKind(kind)

    async def fail_pending(self, model_id: str, region: str, at: datetime) -> None:
        """The allocator could not place the model: its pending action in the region has ended."""
        await self._session.execute(
            update(scaling_action)
            .where(
                scaling_action.c.model_id == model_id,
                scaling_action.c.region == region,
                scaling_action.c.status == PENDING,
            )
            .values(status="failed", resolved_at=at)
        )

    async def has_pending(self, model_id: str, region: str) -> bool:
        """Whether an action for the model in the region awaits the allocator."""
        query = select(scaling_action.c.action_id).where(
            scaling_action.c.model_id == model_id, scaling_action.c.region == region, scaling_action.c.status == PENDING
        )
        return (await self._session.execute(query.limit(1))).first() is not None

    async def action_state(self, since: datetime) -> tuple[set[Key], dict[Key, datetime]]:
        """Model-region pairs with a pending action, and their last action if it was after `since`."""
        query = (
            select(
                scaling_action.c.model_id,
                scaling_action.c.region,
                func.bool_or(scaling_action.c.status == PENDING),
                func.max(scaling_action.c.requested_at),
            )
            .where(or_(scaling_action.c.status == PENDING, scaling_action.c.requested_at >= since))
            .group_by(scaling_action.c.model_id, scaling_action.c.region)
        )
        pending, last = set(), {}
        for m, r, is_pending, at in await self._session.execute(query):
            if is_pending:
                pending.add((m, r))
            last[(m, r)] = at
        return pending, last

    async def mark_overdue(self, before: datetime) -> list[tuple[str, str, str, datetime]]:
        """Mark pending actions requested before `before` as overdue; (action, model, region, requested_at)."""
        result = await self._session.execute(
            update(scaling_action)
            .where(scaling_action.c.status == PENDING, scaling_action.c.requested_at < before)
            .values(status="overdue")
            .returning(
                scaling_action.c.action_id,
                scaling_action.c.model_id,
                scaling_action.c.region,
                scaling_action.c.requested_at,
            )
        )
        return [(a, m, r, at) for a, m, r, at in result]

    async def tiers(self) -> dict[str, Tier]:
        """Each model's current tier."""
        return {m: Tier(t) for m, t in await self._session.execute(select(model_tier.c.model_id, model_tier.c.tier))}

    async def save_tier(self, model_id: str, tier: Tier, rph: float, now: datetime) -> None:
        """Upsert the model's tier; `changed_at` moves only when the tier does."""
        statement = insert(model_tier).values(
            model_id=model_id, tier=tier.value, requests_per_hour=rph, changed_at=now, evaluated_at=now
        )
        changed = case((model_tier.c.tier == statement.excluded.tier, model_tier.c.changed_at), else_=now)
        await self._session.execute(
            statement.on_conflict_do_update(
                index_elements=["model_id"],
                set_={
                    "tier": statement.excluded.tier,
                    "requests_per_hour": rph,
                    "changed_at": changed,
                    "evaluated_at": now,
                },
            )
        )
