"""Reads and writes of the scaler's tables, inside the caller's transaction."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlalchemy import and_, case, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.scaler.adapters.orm import (
    demand_window,
    model_placement,
    model_tier,
    scaling_action,
    scaling_signal,
    server_utilization,
)
from services.scaler.domain.planner import PlannedAction
from services.scaler.domain.tiers import Tier
from shared.events import DemandWindowReported, ModelLoaded, ScalingSignalRaised, ServerMetricsReported, SignalKind

Key = tuple[str, str]  # (model id, region)
PENDING = "pending"


async def save_demand_window(session: AsyncSession, event: DemandWindowReported) -> None:
    """Store one demand window as the router reported it."""
    await session.execute(
        demand_window.insert().values(
            event_id=event.event_id,
            model_id=event.model_id,
            region=event.region,
            window_start=event.window_start,
            window_end=event.window_end,
            requests=event.requests,
            ok=event.ok,
            rejected=event.rejected,
            failed=event.failed,
            tokens_in=event.tokens_in,
            tokens_out=event.tokens_out,
            latency_p95_ms=event.latency_p95_ms,
        )
    )


async def save_utilization(session: AsyncSession, event: ServerMetricsReported) -> None:
    """Keep the newest utilisation report per server and model."""
    values = {
        "server_id": event.server_id,
        "model_id": event.model_id or "",
        "region": event.region,
        "utilization": event.utilization,
        "queue_depth": event.queue_depth,
        "reported_at": event.occurred_at,
    }
    statement = insert(server_utilization).values(**values)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["server_id", "model_id"],
            set_={k: statement.excluded[k] for k in ("region", "utilization", "queue_depth", "reported_at")},
            where=server_utilization.c.reported_at < statement.excluded.reported_at,
        )
    )


async def save_signal(session: AsyncSession, event: ScalingSignalRaised) -> None:
    """Store a monitor signal (it counts as pressure while it is recent)."""
    await session.execute(
        scaling_signal.insert().values(
            event_id=event.event_id,
            model_id=event.model_id,
            region=event.region,
            server_id=event.server_id,
            kind=event.kind.value,
            metric=event.metric,
            value=event.value,
            threshold=event.threshold,
            raised_at=event.occurred_at,
        )
    )


async def place(session: AsyncSession, event: ModelLoaded) -> None:
    """A model is loaded on a server."""
    statement = insert(model_placement).values(
        server_id=event.server_id, model_id=event.model_id, region=event.region, loaded_at=event.occurred_at
    )
    await session.execute(statement.on_conflict_do_nothing())


async def unplace(session: AsyncSession, server_id: str, model_id: str | None = None) -> None:
    """A model (or, with no model, everything) is no longer on a server."""
    condition = model_placement.c.server_id == server_id
    if model_id is not None:
        condition = and_(condition, model_placement.c.model_id == model_id)
    await session.execute(delete(model_placement).where(condition))


async def resolve_action(session: AsyncSession, action_id: str, status: str, at: datetime) -> bool:
    """Close an open action as confirmed or failed; False when there was none to close.

    A confirmation also overrides an earlier failure (the model did get loaded after all); a
    failure never overrides a confirmation.
    """
    closable = [PENDING, "overdue", "failed"] if status == "confirmed" else [PENDING, "overdue"]
    result = await session.execute(
        update(scaling_action)
        .where(scaling_action.c.action_id == action_id, scaling_action.c.status.in_(closable))
        .values(status=status, resolved_at=at)
        .returning(scaling_action.c.action_id)
    )
    return result.first() is not None


async def fail_pending(session: AsyncSession, model_id: str, region: str, at: datetime) -> None:
    """The allocator could not place the model: its pending action in the region has ended."""
    await session.execute(
        update(scaling_action)
        .where(
            scaling_action.c.model_id == model_id,
            scaling_action.c.region == region,
            scaling_action.c.status == PENDING,
        )
        .values(status="failed", resolved_at=at)
    )


async def instances(session: AsyncSession, model_id: str, region: str) -> int:
    """How many servers in the region have the model loaded."""
    query = select(func.count()).where(model_placement.c.model_id == model_id, model_placement.c.region == region)
    return int((await session.execute(query)).scalar_one())


async def has_pending(session: AsyncSession, model_id: str, region: str) -> bool:
    """Whether an action for the model in the region awaits the allocator."""
    query = select(scaling_action.c.action_id).where(
        scaling_action.c.model_id == model_id, scaling_action.c.region == region, scaling_action.c.status == PENDING
    )
    return (await session.execute(query.limit(1))).first() is not None


async def save_action(session: AsyncSession, action: PlannedAction, action_id: str, now: datetime) -> None:
    """Record a decision with its inputs, as pending."""
    await session.execute(
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


async def demand_counts(
    session: AsyncSession, since: datetime, until: datetime, bucket_s: int
) -> dict[Key, dict[int, float]]:
    """Requests per bucket number for every model and region with windows in [since, until)."""
    bucket = func.floor(func.extract("epoch", demand_window.c.window_start) / bucket_s).label("bucket")
    query = (
        select(demand_window.c.model_id, demand_window.c.region, bucket, func.sum(demand_window.c.requests))
        .where(demand_window.c.window_start >= since, demand_window.c.window_start < until)
        .group_by(demand_window.c.model_id, demand_window.c.region, bucket)
    )
    counts: dict[Key, dict[int, float]] = defaultdict(dict)
    for model_id, region, index, requests in await session.execute(query):
        counts[(model_id, region)][int(index)] = float(requests)
    return counts


async def last_requests(session: AsyncSession, since: datetime) -> dict[Key, datetime]:
    """When each model last had a request in each region, for those with one since `since`."""
    query = (
        select(demand_window.c.model_id, demand_window.c.region, func.max(demand_window.c.window_end))
        .where(demand_window.c.requests > 0, demand_window.c.window_start >= since)
        .group_by(demand_window.c.model_id, demand_window.c.region)
    )
    return {(m, r): at for m, r, at in await session.execute(query)}


async def placements(session: AsyncSession) -> dict[Key, tuple[int, datetime]]:
    """Instances and the latest load time per model and region."""
    query = select(
        model_placement.c.model_id, model_placement.c.region, func.count(), func.max(model_placement.c.loaded_at)
    ).group_by(model_placement.c.model_id, model_placement.c.region)
    return {(m, r): (int(n), at) for m, r, n, at in await session.execute(query)}


async def utilizations(session: AsyncSession, since: datetime) -> dict[Key, float]:
    """Mean recent utilisation per model and region (server-wide reports count for the models on them)."""
    placed = model_placement.alias("placed")
    model = func.coalesce(func.nullif(server_utilization.c.model_id, ""), placed.c.model_id).label("model")
    query = (
        select(model, server_utilization.c.region, func.avg(server_utilization.c.utilization))
        .select_from(
            server_utilization.outerjoin(
                placed, and_(server_utilization.c.model_id == "", placed.c.server_id == server_utilization.c.server_id)
            )
        )
        .where(server_utilization.c.reported_at >= since)
        .group_by(model, server_utilization.c.region)
    )
    return {(m, r): float(u) for m, r, u in await session.execute(query) if m}


async def pressures(session: AsyncSession, since: datetime) -> dict[Key, int]:
    """+1 where recent monitor signals ask for more capacity, -1 where only for less.

    A signal about a server counts for the models on it; one without a region (region "")
    counts for every region of its model.
    """
    placed = model_placement.alias("placed")
    model = func.coalesce(scaling_signal.c.model_id, placed.c.model_id).label("model")
    region = func.coalesce(scaling_signal.c.region, placed.c.region, "").label("region")
    up = case((scaling_signal.c.kind == SignalKind.SCALE_DOWN.value, 0), else_=1)
    query = (
        select(model, region, func.max(up))
        .select_from(
            scaling_signal.outerjoin(
                placed, and_(scaling_signal.c.model_id.is_(None), placed.c.server_id == scaling_signal.c.server_id)
            )
        )
        .where(scaling_signal.c.raised_at >= since)
        .group_by(model, region)
    )
    return {(m, r): (1 if wants_more else -1) for m, r, wants_more in await session.execute(query) if m}


async def action_state(session: AsyncSession, since: datetime) -> tuple[set[Key], dict[Key, datetime]]:
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
    for m, r, is_pending, at in await session.execute(query):
        if is_pending:
            pending.add((m, r))
        last[(m, r)] = at
    return pending, last


async def tiers(session: AsyncSession) -> dict[str, Tier]:
    """Each model's current tier."""
    return {m: Tier(t) for m, t in await session.execute(select(model_tier.c.model_id, model_tier.c.tier))}


async def save_tier(session: AsyncSession, model_id: str, tier: Tier, rph: float, now: datetime) -> None:
    """Upsert the model's tier; `changed_at` moves only when the tier does."""
    statement = insert(model_tier).values(
        model_id=model_id, tier=tier.value, requests_per_hour=rph, changed_at=now, evaluated_at=now
    )
    changed = case((model_tier.c.tier == statement.excluded.tier, model_tier.c.changed_at), else_=now)
    await session.execute(
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


async def mark_overdue(session: AsyncSession, before: datetime) -> list[tuple[str, str, str, datetime]]:
    """Mark pending actions requested before `before` as overdue; (action, model, region, requested_at)."""
    result = await session.execute(
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
