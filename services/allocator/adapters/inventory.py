"""Inventory in Postgres: seeding, locking a region's pools, taking and returning GPUs.

Functions of one session each; `repository.SqlAllocatorRepository` calls them in its unit of work.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from sqlalchemy import and_, case, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.allocator.adapters.orm import (
    deployment_plan,
    gpu,
    gpu_pool,
    gpu_price,
    model_requirement,
    placement,
    server,
)
from services.allocator.domain.allocation import PoolKey, gpu_ids_for
from services.allocator.domain.capacity import TAKE_ORDER
from services.allocator.domain.fleet import FleetConfig, ModelRequirement, Pool, PricingClass
from services.allocator.domain.planner import best_plan
from services.allocator.domain.scaling import Server
from shared.leader import lock_for_transaction

# Rows whose server holds GPUs. A `draining` one (under a spot reclaim notice) still runs and holds
# its GPUs, but is no capacity: planning replaces it, and it does not count toward max_servers.
LIVE = ("starting", "running", "draining", "stopping")
# A mutex, not leadership: a transaction-scoped advisory lock that serialises planning (the
# server cap spans regions) and is released at commit. Every replica plans; they take turns.
SERVERS_LOCK = "allocator.servers"


class InsufficientGpus(RuntimeError):
    """The pool has fewer free GPUs than asked for (the conditional update matched no row)."""


async def seed(session: AsyncSession, fleet: FleetConfig) -> int:
    """Insert the seed's pools (with their GPU ids), prices and requirements that are missing."""
    added = 0
    for pool in fleet.pools:
        values = {"region": pool.region, "gpu_type": pool.gpu_type, "total": pool.total, "available": pool.available}
        values |= {"reserved": pool.reserved, "pricing_class": pool.pricing_class.value}
        inserted = await session.execute(
            insert(gpu_pool).values(values).on_conflict_do_nothing().returning(gpu_pool.c.region)
        )
        if inserted.first() is None:
            continue  # live counters are never overwritten by the seed
        added += 1
        ids = gpu_ids_for(pool)
        held = set(ids[len(ids) - pool.reserved :]) if pool.reserved else set()
        # GPUs neither free nor reserved in the seed are allocated outside this allocator.
        free = set(ids[: pool.available])
        rows = [
            {"gpu_id": i, "region": pool.region, "gpu_type": pool.gpu_type, "state": _seed_state(i, free, held)}
            | {"pricing_class": pool.pricing_class.value}
            for i in ids
        ]
        await session.execute(insert(gpu).on_conflict_do_nothing(), rows)
        prices = {c: fleet.price(pool.region, pool.gpu_type, c) for c in PricingClass}
        await session.execute(
            insert(gpu_price)
            .values(region=pool.region, gpu_type=pool.gpu_type, on_demand_per_hour=prices[PricingClass.ON_DEMAND])
            .values(spot_per_hour=prices[PricingClass.SPOT], reserved_per_hour=prices[PricingClass.RESERVED])
            .on_conflict_do_nothing()
        )
    for requirement in fleet.models.values():
        await session.execute(insert(model_requirement).values(_requirement_row(requirement)).on_conflict_do_nothing())
    return added


def _seed_state(gpu_id: str, free: set[str], held: set[str]) -> str:
    return "free" if gpu_id in free else "reserved" if gpu_id in held else "allocated"


def _requirement_row(r: ModelRequirement) -> dict[str, object]:
    return {
        "model_id": r.model_id,
        "min_memory_gb": r.min_memory_gb,
        "preferred_gpu": r.preferred_gpu,
        "instances_per_gpu": r.instances_per_gpu,
        "triton_model": r.triton_model,
        "latency_ms": r.latency_ms,
        "latency_target_ms": r.latency_target_ms,
        "quantisations": ",".join(r.quantisations),
        "emulates": r.emulates,
    }


async def requirements(session: AsyncSession) -> dict[str, ModelRequirement]:
    """Every model's requirements as stored (operators may edit them)."""
    rows = (await session.execute(select(model_requirement))).mappings()
    return {
        row["model_id"]: ModelRequirement(
            model_id=row["model_id"],
            min_memory_gb=row["min_memory_gb"],
            preferred_gpu=row["preferred_gpu"],
            instances_per_gpu=row["instances_per_gpu"],
            triton_model=row["triton_model"],
            latency_ms=row["latency_ms"],
            latency_target_ms=row["latency_target_ms"],
            quantisations=tuple(row["quantisations"].split(",")),
            emulates=row["emulates"],
        )
        for row in rows
    }


async def lock_region(session: AsyncSession, region: str) -> dict[PoolKey, Pool]:
    """The region's pools, row-locked (FOR UPDATE) until the transaction ends; serialises planning."""
    await lock_for_transaction(session, SERVERS_LOCK)
    rows = await session.execute(
        select(gpu_pool).where(gpu_pool.c.region == region).order_by(gpu_pool.c.gpu_type).with_for_update()
    )
    return {
        (r.region, r.gpu_type): Pool(
            r.region, r.gpu_type, r.total, r.available, r.reserved, PricingClass(r.pricing_class)
        )
        for r in rows
    }


async def pools(session: AsyncSession) -> dict[PoolKey, Pool]:
    """Every pool as committed (not locked: for reading, e.g. the re-plan)."""
    rows = await session.execute(select(gpu_pool).order_by(gpu_pool.c.region, gpu_pool.c.gpu_type))
    return {
        (r.region, r.gpu_type): Pool(
            r.region, r.gpu_type, r.total, r.available, r.reserved, PricingClass(r.pricing_class)
        )
        for r in rows
    }


async def live_servers(session: AsyncSession, prefix: str) -> tuple[list[Server], int]:
    """Servers of this deployment that can take instances, with their placements, and how many count toward the cap."""
    rows = (
        await session.execute(
            select(server.c.server_id, server.c.region, server.c.gpu_type, server.c.gpu_count, server.c.state).where(
                server.c.state.in_(LIVE), server.c.server_id.startswith(f"{prefix}-")
            )
        )
    ).all()
    ids = [r.server_id for r in rows]
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    placed = await session.execute(
        select(placement.c.server_id, placement.c.model_id, placement.c.instances).where(
            placement.c.server_id.in_(ids), placement.c.state != "unloading"
        )
    )
    for p in placed:
        counts[p.server_id][p.model_id] = p.instances
    servers = [
        Server(r.server_id, r.region, r.gpu_type, r.gpu_count, counts[r.server_id])
        for r in rows
        if r.state not in ("stopping", "draining")
    ]
    return servers, sum(1 for r in rows if r.state != "draining")


async def take_gpus(session: AsyncSession, region: str, gpu_type: str, count: int, server_id: str) -> list[str]:
    """Allocate `count` GPUs of the pool to `server_id`; InsufficientGpus rather than over-allocate."""
    taken = await session.execute(
        gpu_pool.update()
        .where(gpu_pool.c.region == region, gpu_pool.c.gpu_type == gpu_type, gpu_pool.c.available >= count)
        .values(available=gpu_pool.c.available - count, updated_at=func.now())
        .returning(gpu_pool.c.available)
    )
    if taken.first() is None:
        raise InsufficientGpus(f"fewer than {count} free {gpu_type} GPUs in {region}")
    free = and_(gpu.c.region == region, gpu.c.gpu_type == gpu_type, gpu.c.state == "free")
    # Reserved GPUs first (paid for whether used or not), then spot, then on-demand.
    first = case(*((gpu.c.pricing_class == c, n) for n, c in enumerate(TAKE_ORDER)), else_=len(TAKE_ORDER))
    query = select(gpu.c.gpu_id).where(free).order_by(first, gpu.c.gpu_id).limit(count).with_for_update()
    ids = list((await session.execute(query)).scalars().all())
    if len(ids) < count:
        raise InsufficientGpus(f"pool {region}/{gpu_type} counts more free GPUs than it has ids for")
    await session.execute(gpu.update().where(gpu.c.gpu_id.in_(ids)).values(state="allocated", server_id=server_id))
    return ids


async def return_gpus(session: AsyncSession, server_ids: Iterable[str]) -> int:
    """Give the servers' GPUs back to their pools; how many came back."""
    rows = (
        await session.execute(
            gpu.update()
            .where(gpu.c.server_id.in_(list(server_ids)))
            .values(state="free", server_id=None)
            .returning(gpu.c.region, gpu.c.gpu_type)
        )
    ).all()
    per_pool: dict[PoolKey, int] = defaultdict(int)
    for row in rows:
        per_pool[(row.region, row.gpu_type)] += 1
    for (region, gpu_type), n in sorted(per_pool.items()):
        await session.execute(
            gpu_pool.update()
            .where(gpu_pool.c.region == region, gpu_pool.c.gpu_type == gpu_type)
            .values(available=gpu_pool.c.available + n, updated_at=func.now())
        )
    return len(rows)


async def price_per_gpu(session: AsyncSession, fleet: FleetConfig, pool: Pool) -> float:
    """$/h of one GPU of the pool under its pricing class (the latest published price, else the seed's)."""
    row = (
        await session.execute(
            select(gpu_price).where(gpu_price.c.region == pool.region, gpu_price.c.gpu_type == pool.gpu_type)
        )
    ).first()
    if row is None:
        return fleet.price(pool.region, pool.gpu_type, pool.pricing_class)
    column = {"on_demand": "on_demand_per_hour", "spot": "spot_per_hour", "reserved": "reserved_per_hour"}
    return float(getattr(row, column[pool.pricing_class.value]))


async def record_plan(session: AsyncSession, fleet: FleetConfig, server_id: str, requirement: ModelRequirement) -> None:
    """Keep the best deployment plan for the model on the server's GPUs (none when no plan fits)."""
    row = (await session.execute(select(server).where(server.c.server_id == server_id))).one()
    if row.gpu_type not in fleet.gpus:
        return
    target = requirement.latency_target_ms if requirement.latency_target_ms is not None else float("inf")
    plan = best_plan(requirement, fleet.gpus[row.gpu_type], row.cost_per_hour / row.gpu_count, target, row.gpu_count)
    if plan is None:
        return
    values = {
        "strategy": plan.strategy,
        "quantisation": plan.quantisation,
        "gpus": plan.gpus,
        "memory_per_gpu_gb": plan.memory_per_gpu_gb,
        "latency_ms": plan.latency_ms,
        "throughput": plan.throughput,
        "cost_per_hour": plan.cost_per_hour,
    }
    await session.execute(
        insert(deployment_plan)
        .values(server_id=server_id, model_id=requirement.model_id, **values)
        .on_conflict_do_update(index_elements=["server_id", "model_id"], set_=values)
    )


async def forget_placements(session: AsyncSession, server_id: str, model_id: str | None = None) -> None:
    """Delete the server's placements (of one model, or all) and their deployment plans."""
    for table in (placement, deployment_plan):
        where = table.c.server_id == server_id
        if model_id is not None:
            where = where & (table.c.model_id == model_id)
        await session.execute(table.delete().where(where))
