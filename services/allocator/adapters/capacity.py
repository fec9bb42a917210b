"""Capacity changes in Postgres: a pool's GPUs with their classes, changing them, and the audit.

Functions of one session each; `repository.SqlAllocatorRepository` calls them in its unit of work.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.allocator.adapters.inventory import LIVE, SERVERS_LOCK
from services.allocator.adapters.orm import capacity_change, gpu, gpu_pool, server
from services.allocator.domain.capacity import CapacityPlan, GpuOnRecord
from services.allocator.domain.fleet import Pool, PricingClass
from shared.events import CapacityChangeRequested
from shared.leader import lock_for_transaction


async def lock_pool(
    session: AsyncSession, region: str, gpu_type: str
) -> tuple[Pool | None, list[GpuOnRecord], set[str]]:
    """The pool (row-locked, and planning's lock taken), its GPUs, and the live servers holding them."""
    await lock_for_transaction(session, SERVERS_LOCK)
    row = (
        await session.execute(
            select(gpu_pool).where(gpu_pool.c.region == region, gpu_pool.c.gpu_type == gpu_type).with_for_update()
        )
    ).first()
    if row is None:
        return None, [], set()
    pool = Pool(row.region, row.gpu_type, row.total, row.available, row.reserved, PricingClass(row.pricing_class))
    rows = await session.execute(
        select(gpu.c.gpu_id, gpu.c.state, gpu.c.pricing_class, gpu.c.server_id)
        .where(gpu.c.region == region, gpu.c.gpu_type == gpu_type)
        .order_by(gpu.c.gpu_id)
        .with_for_update()
    )
    gpus = [GpuOnRecord(r.gpu_id, r.state, r.pricing_class, r.server_id) for r in rows]
    holders = {g.server_id for g in gpus if g.server_id is not None}
    live = await session.execute(
        select(server.c.server_id).where(server.c.server_id.in_(holders), server.c.state.in_(LIVE))
    )
    return pool, gpus, {str(r[0]) for r in live}


async def apply_plan(
    session: AsyncSession, region: str, gpu_type: str, plan: CapacityPlan, new_ids: dict[str, list[str]]
) -> None:
    """Convert, release and add the plan's GPUs, keeping the pool's counters in step with its rows."""
    for target in sorted(set(plan.convert.values())):
        ids = [i for i, c in plan.convert.items() if c == target]
        await session.execute(gpu.update().where(gpu.c.gpu_id.in_(ids)).values(pricing_class=target))
    if plan.release:
        # Only free rows go: a GPU a server took meanwhile cannot be released (the pool lock prevents it).
        gone = await session.execute(
            gpu.delete().where(gpu.c.gpu_id.in_(plan.release), gpu.c.state == "free").returning(gpu.c.gpu_id)
        )
        if len(gone.all()) != len(plan.release):
            raise RuntimeError(f"pool {region}/{gpu_type}: a GPU to release was no longer free")
    added = [
        {"gpu_id": i, "region": region, "gpu_type": gpu_type, "state": "free", "pricing_class": c}
        for c, ids in sorted(new_ids.items())
        for i in ids
    ]
    if added:
        await session.execute(insert(gpu), added)
    change = len(added) - len(plan.release)
    if change:
        await session.execute(
            gpu_pool.update()
            .where(gpu_pool.c.region == region, gpu_pool.c.gpu_type == gpu_type)
            .values(total=gpu_pool.c.total + change, available=gpu_pool.c.available + change, updated_at=func.now())
        )


async def record_change(
    session: AsyncSession, event: CapacityChangeRequested, result: str, reason: str | None, applied: dict[str, Any]
) -> bool:
    """Audit the request once; False when its request id is on record already."""
    values = {
        "request_id": event.request_id,
        "recommendation_id": event.recommendation_id,
        "region": event.region,
        "gpu_type": event.gpu_type,
        "requested": dict(event.changes),
        "applied": applied or None,
        "result": result,
        "reason": reason[:2000] if reason else None,
        "commitment_months": event.commitment_months,
    }
    inserted = await session.execute(
        insert(capacity_change).values(values).on_conflict_do_nothing().returning(capacity_change.c.request_id)
    )
    return inserted.first() is not None


async def change_on_record(session: AsyncSession, request_id: str) -> bool:
    """True when the request id was carried out or refused before."""
    query = select(capacity_change.c.request_id).where(capacity_change.c.request_id == request_id)
    return (await session.execute(query)).first() is not None


async def gpu_classes(session: AsyncSession, gpu_ids: list[str]) -> dict[str, int]:
    """How many of the GPUs are of each pricing class."""
    rows = await session.execute(
        select(gpu.c.pricing_class, func.count()).where(gpu.c.gpu_id.in_(gpu_ids)).group_by(gpu.c.pricing_class)
    )
    return {str(r[0]): int(r[1]) for r in rows}


async def reprice_server(session: AsyncSession, server_id: str, pricing_class: str, cost_per_hour: float) -> None:
    """A running server's new class and $/h (its GPUs were covered by a commitment)."""
    await session.execute(
        server.update()
        .where(server.c.server_id == server_id)
        .values(pricing_class=pricing_class, cost_per_hour=cost_per_hour, updated_at=func.now())
    )
