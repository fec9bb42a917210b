"""The control path's queries: the action queue (priority, then age, one owner per lease) and the
reconciler's view of the records (live servers with their placements, the GPU books).

Functions of one session each; `repository.SqlAllocatorRepository` calls them in its unit of work.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.allocator.adapters.inventory import LIVE
from services.allocator.adapters.orm import gpu, gpu_pool, placement, registered_server, scaling_action, server
from services.allocator.domain.reconciliation import (
    ATTEMPT_MARK,
    ActionOnRecord,
    PlacementOnRecord,
    PoolAccount,
    RegisteredServer,
    ServerOnRecord,
    latest_attempts,
    replacement_prefix,
)
from services.allocator.domain.records import ActionRecord
from services.allocator.domain.replanning import RunningServer

PRIORITY = {"high": 0, "medium": 1, "low": 2}


async def now(session: AsyncSession) -> datetime:
    """The database's clock: leases and ages are measured against one clock for every replica."""
    moment: datetime = (await session.execute(select(func.now()))).scalar_one()
    return moment


async def claim_action(session: AsyncSession, owner: str, lease_s: float, max_attempts: int) -> ActionRecord | None:
    """Take the next action to carry out (highest priority, then oldest) that no live lease holds.

    `FOR UPDATE SKIP LOCKED`: two replicas claiming at once get different actions; the lease
    (with the attempt counted) is written in the same transaction, so an action has one owner.
    """
    free = or_(scaling_action.c.owner.is_(None), scaling_action.c.lease_until < func.now())
    candidate = (
        select(scaling_action.c.action_id)
        .where(scaling_action.c.state == "in_progress", free, scaling_action.c.attempts < max_attempts)
        .order_by(scaling_action.c.priority, scaling_action.c.created_at, scaling_action.c.action_id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    action_id = (await session.execute(candidate)).scalar_one_or_none()
    if action_id is None:
        return None
    claimed = await session.execute(
        scaling_action.update()
        .where(scaling_action.c.action_id == action_id)
        .values(
            owner=owner,
            lease_until=func.now() + timedelta(seconds=lease_s),
            attempts=scaling_action.c.attempts + 1,
            updated_at=func.now(),
        )
        .returning(
            scaling_action.c.action_id,
            scaling_action.c.model_id,
            scaling_action.c.region,
            scaling_action.c.traceparent,
        )
    )
    row = claimed.one()
    return ActionRecord(row.action_id, row.model_id, row.region, row.traceparent)


async def renew_lease(session: AsyncSession, action_id: str, owner: str, lease_s: float) -> bool:
    """Extend the owner's lease; False when the action is no longer this owner's (or no longer in progress)."""
    renewed = await session.execute(
        scaling_action.update()
        .where(
            scaling_action.c.action_id == action_id,
            scaling_action.c.owner == owner,
            scaling_action.c.state == "in_progress",
        )
        .values(lease_until=func.now() + timedelta(seconds=lease_s))
        .returning(scaling_action.c.action_id)
    )
    return renewed.first() is not None


async def release_action(session: AsyncSession, action_id: str, owner: str) -> None:
    """Give up the lease (the action is finished, or will be taken on again)."""
    await session.execute(
        scaling_action.update()
        .where(scaling_action.c.action_id == action_id, scaling_action.c.owner == owner)
        .values(owner=None, lease_until=None)
    )


async def actions_in_progress(session: AsyncSession) -> list[ActionOnRecord]:
    """Every action in progress, with whether a worker's lease on it still runs."""
    leased = and_(scaling_action.c.owner.is_not(None), scaling_action.c.lease_until >= func.now())
    rows = await session.execute(
        select(
            scaling_action.c.action_id,
            scaling_action.c.model_id,
            scaling_action.c.region,
            scaling_action.c.created_at,
            scaling_action.c.attempts,
            leased.label("leased"),
        ).where(scaling_action.c.state == "in_progress")
    )
    return [ActionOnRecord(r.action_id, r.model_id, r.region, r.created_at, r.attempts, bool(r.leased)) for r in rows]


async def servers_on_record(session: AsyncSession, prefix: str) -> list[ServerOnRecord]:
    """This deployment's live servers with their placements; `busy` when an action in progress owns it or them."""
    in_progress = select(scaling_action.c.action_id).where(scaling_action.c.state == "in_progress")
    rows = (
        await session.execute(
            select(server, server.c.action_id.in_(in_progress).label("owned")).where(
                server.c.state.in_(LIVE), server.c.server_id.startswith(f"{prefix}-")
            )
        )
    ).all()
    placed: dict[str, list[PlacementOnRecord]] = defaultdict(list)
    busy_placements: set[str] = set()
    for p in await session.execute(
        select(placement, placement.c.action_id.in_(in_progress).label("owned")).where(
            placement.c.server_id.in_([r.server_id for r in rows])
        )
    ):
        placed[p.server_id].append(PlacementOnRecord(p.model_id, p.triton_model, p.state, p.instances))
        if p.owned and p.state != "ready":
            busy_placements.add(p.server_id)
    replacements = await _replacements(session, [r.server_id for r in rows if r.state == "draining"])
    return [
        ServerOnRecord(
            server_id=r.server_id,
            region=r.region,
            state=r.state,
            busy=(bool(r.owned) and r.state != "running") or r.server_id in busy_placements,
            endpoint=r.endpoint,
            unhealthy_since=r.unhealthy_since,
            placements=tuple(placed[r.server_id]),
            reclaim_at=r.reclaim_at,
            replaced=replacements.get(r.server_id) == {"done"} or (r.state == "draining" and not placed[r.server_id]),
            replacement_failed="failed" in replacements.get(r.server_id, set())
            and "in_progress" not in replacements.get(r.server_id, set()),
        )
        for r in rows
    ]


async def _replacements(session: AsyncSession, draining: list[str]) -> dict[str, set[str]]:
    """For each draining server, the states of the actions replacing it (each one's latest attempt)."""
    states: dict[str, set[str]] = {}
    for server_id in draining:
        prefix = replacement_prefix(server_id)
        query = select(scaling_action.c.action_id, scaling_action.c.state).where(
            scaling_action.c.action_id.startswith(prefix, autoescape=True)
        )
        states[server_id] = set(latest_attempts(dict((await session.execute(query)).tuples().all())).values())
    return states


async def replacement_attempts(session: AsyncSession, base_id: str) -> dict[str, str]:
    """Every attempt of one replacement action (`base_id`, then `base_id~2`, ...): id -> state."""
    query = select(scaling_action.c.action_id, scaling_action.c.state).where(
        (scaling_action.c.action_id == base_id)
        | scaling_action.c.action_id.startswith(f"{base_id}{ATTEMPT_MARK}", autoescape=True)
    )
    return dict((await session.execute(query)).tuples().all())


async def mark_draining(session: AsyncSession, server_id: str, reclaim_at: datetime) -> bool:
    """Put a running server (or one being moved) under a reclaim notice; False when it is gone or already noticed."""
    movable = (server.c.state == "running") | ((server.c.state == "draining") & server.c.reclaim_at.is_(None))
    marked = await session.execute(
        server.update()
        .where(server.c.server_id == server_id, movable)
        .values(state="draining", reclaim_at=reclaim_at, updated_at=func.now())
        .returning(server.c.server_id)
    )
    return marked.first() is not None


async def spot_servers(session: AsyncSession, prefix: str) -> list[str]:
    """This deployment's running servers priced as spot."""
    rows = await session.execute(
        select(server.c.server_id).where(
            server.c.state == "running", server.c.pricing_class == "spot", server.c.server_id.startswith(f"{prefix}-")
        )
    )
    return sorted(str(r[0]) for r in rows)


async def mark_unhealthy(session: AsyncSession, server_id: str, since: bool) -> None:
    """Start (since=True: now) or clear the server's unhealthy clock."""
    await session.execute(
        server.update()
        .where(server.c.server_id == server_id, server.c.state == "running")
        .values(unhealthy_since=func.now() if since else None)
    )


async def pool_accounts(session: AsyncSession) -> list[PoolAccount]:
    """Each pool's counters, and its GPU rows counted by state."""
    counts: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    for r in await session.execute(
        select(gpu.c.region, gpu.c.gpu_type, gpu.c.state, func.count()).group_by(
            gpu.c.region, gpu.c.gpu_type, gpu.c.state
        )
    ):
        counts[(r[0], r[1])][r[2]] = int(r[3])
    return [
        PoolAccount(p.region, p.gpu_type, p.total, p.available, p.reserved, counts[(p.region, p.gpu_type)])
        for p in await session.execute(select(gpu_pool).order_by(gpu_pool.c.region, gpu_pool.c.gpu_type))
    ]


async def stray_gpu_holders(session: AsyncSession) -> list[str]:
    """Server ids that hold GPUs but are not live (released, failed, or no row): their GPUs leaked."""
    live = select(server.c.server_id).where(server.c.state.in_(LIVE))
    rows = await session.execute(
        select(gpu.c.server_id)
        .where(gpu.c.state == "allocated", gpu.c.server_id.is_not(None), gpu.c.server_id.not_in(live))
        .distinct()
    )
    return sorted(str(r[0]) for r in rows)


async def register_server(session: AsyncSession, server_id: str, endpoint: str, region: str) -> None:
    """Watch a server someone else announced (again: its address may have changed, its clock restarts)."""
    values = {"endpoint": endpoint, "region": region, "unanswered_since": None}
    await session.execute(
        insert(registered_server)
        .values(server_id=server_id, **values)
        .on_conflict_do_update(index_elements=["server_id"], set_=values)
    )


async def forget_registered(session: AsyncSession, server_id: str) -> None:
    """Stop watching a server (it was released)."""
    await session.execute(registered_server.delete().where(registered_server.c.server_id == server_id))


async def registered_servers(session: AsyncSession, limit: int) -> list[RegisteredServer]:
    """Registered servers, those unasked longest first (the oldest clocks), at most `limit`."""
    rows = await session.execute(
        select(registered_server)
        .order_by(registered_server.c.unanswered_since.asc().nulls_last(), registered_server.c.registered_at)
        .limit(limit)
    )
    return [RegisteredServer(r.server_id, r.endpoint, r.region, r.unanswered_since) for r in rows]


async def mark_unanswered(session: AsyncSession, server_ids: list[str], since: bool) -> None:
    """Start (since=True: now) or clear the servers' unanswered clocks."""
    if server_ids:
        await session.execute(
            registered_server.update()
            .where(registered_server.c.server_id.in_(server_ids))
            .values(unanswered_since=func.now() if since else None)
        )


async def undrain(session: AsyncSession, server_id: str, reason: str) -> None:
    """A server whose move failed serves on: running again."""
    await session.execute(
        server.update()
        .where(server.c.server_id == server_id, server.c.state == "draining", server.c.reclaim_at.is_(None))
        .values(state="running", reason=reason, updated_at=func.now())
    )


async def running_servers(session: AsyncSession, prefix: str) -> list[RunningServer]:
    """This deployment's running servers with their ready placements (what a re-plan may move)."""
    rows = (
        await session.execute(
            select(server).where(server.c.state == "running", server.c.server_id.startswith(f"{prefix}-"))
        )
    ).all()
    placed: dict[str, dict[str, int]] = defaultdict(dict)
    for p in await session.execute(
        select(placement.c.server_id, placement.c.model_id, placement.c.instances).where(
            placement.c.server_id.in_([r.server_id for r in rows]), placement.c.state == "ready"
        )
    ):
        placed[p.server_id][p.model_id] = int(p.instances)
    return [
        RunningServer(r.server_id, r.region, r.gpu_type, r.gpu_count, float(r.cost_per_hour), placed[r.server_id])
        for r in rows
    ]


async def mark_moving(session: AsyncSession, server_id: str) -> bool:
    """A running server whose instances move elsewhere: draining (no reclaim), no longer capacity."""
    marked = await session.execute(
        server.update()
        .where(server.c.server_id == server_id, server.c.state == "running")
        .values(state="draining", reclaim_at=None, updated_at=func.now())
        .returning(server.c.server_id)
    )
    return marked.first() is not None
