"""The allocator's service layer: plan a scaling action in one transaction, then make it real.

The planning transaction records the action (idempotency by action id, inbox by event id),
locks the region's pools, plans, takes the GPUs and writes the servers and placements in their
"starting / loading / unloading / stopping" states. `provisioning.carry_out` then starts and
stops the real servers and loads and unloads the models, committing each result with its event
in the outbox, so an event goes out only once the change is committed and real. A redelivered
action that finished changes nothing; one that was interrupted is carried on from the rows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.allocator.adapters import repository as repo
from services.allocator.adapters.metrics import AllocatorMetrics
from services.allocator.adapters.orm import gpu_price, inbox, outbox, placement, scaling_action, server
from services.allocator.adapters.provisioner import Provisioner
from services.allocator.domain.allocation import PoolKey
from services.allocator.domain.fleet import FleetConfig, Pool
from services.allocator.domain.scaling import AddInstances, Server, StartServer, Step, plan_scaling
from services.allocator.settings import AllocatorSettings
from shared.events import (
    ALLOCATIONS,
    ActionKind,
    AllocationFailed,
    Event,
    ModelLoaded,
    PricesPublished,
    ScalingActionRequested,
)
from shared.inbox import first_delivery
from shared.outbox import OutboxRelay, add_to_outbox

log = logging.getLogger(__name__)


@dataclass
class Allocator:
    """What the allocator's handlers work with; built once in `create_app`."""

    settings: AllocatorSettings
    sessions: async_sessionmaker[AsyncSession]
    fleet: FleetConfig
    provisioner: Provisioner
    relay: OutboxRelay
    metrics: AllocatorMetrics
    new_suffix: Callable[[], str]

    async def announce(self, session: AsyncSession, event: Event, key: str) -> None:
        """Queue an allocation event; it is published after the surrounding transaction commits."""
        await add_to_outbox(session, outbox, ALLOCATIONS, event, key=key)

    async def publish(self) -> None:
        """Relay what was just committed now (the background relay retries whatever this misses)."""
        try:
            await self.relay.publish_pending()
        except Exception:
            log.exception("publishing the outbox failed; the relay will retry")
        self.relay.notify()
        await self.metrics.refresh(self.sessions)


async def plan_action(allocator: Allocator, consumer: str, event: ScalingActionRequested) -> bool:
    """Record and plan the action in one transaction; True when there is work to carry out."""
    async with allocator.sessions.begin() as session:
        await first_delivery(session, inbox, consumer, event.event_id)
        values: dict[str, object] = {"action_id": event.action_id, "model_id": event.model_id}
        values |= {"region": event.region, "kind": event.kind.value, "target_instances": event.target_instances}
        values["state"] = "in_progress"
        recorded = await session.execute(
            insert(scaling_action).values(values).on_conflict_do_nothing().returning(scaling_action.c.action_id)
        )
        if recorded.first() is None:
            # Seen before (a redelivery, or the scaler sent it again): carry on only if it was cut short.
            state = (
                await session.execute(
                    select(scaling_action.c.state).where(scaling_action.c.action_id == event.action_id)
                )
            ).scalar_one()
            allocator.metrics.allocations.labels("duplicate").inc()
            return bool(state == "in_progress")
        failure = await _plan(allocator, session, event)
        if failure is not None:
            await fail_action(allocator, session, event.action_id, event.model_id, event.region, failure)
    await allocator.publish()
    return failure is None


async def _plan(allocator: Allocator, session: AsyncSession, event: ScalingActionRequested) -> str | None:
    """Plan under the region's pool locks and write the steps; the failure reason, if any."""
    pools = await repo.lock_region(session, event.region)
    requirements = await repo.requirements(session)
    requirement = requirements.get(event.model_id)
    if requirement is None:
        return f"unknown model {event.model_id}: no requirements on record"
    if not pools:
        return f"no GPU pools in region {event.region}"
    servers, running = await repo.live_servers(session, allocator.settings.server_prefix)
    fleet = replace(allocator.fleet, models=requirements, pools=tuple(pools.values()))
    target = 0 if event.kind is ActionKind.UNLOAD else event.target_instances
    prefix = f"{allocator.settings.server_prefix}-{event.region}"
    plan = plan_scaling(
        requirement,
        event.region,
        target,
        servers,
        fleet,
        pools,
        new_server_id=lambda: f"{prefix}-{allocator.new_suffix()}",
        max_servers=allocator.settings.max_servers - (running - len(servers)),
        max_gpus_per_server=allocator.settings.max_gpus_per_server,
    )
    if plan.failure is not None:
        return plan.failure
    if not plan.steps:
        await _confirm(allocator, session, event, servers, requirement.repository_name)
    for step in plan.steps:
        await _write_step(allocator, session, event, step, requirement.repository_name, pools)
        if isinstance(step, StartServer) or (isinstance(step, AddInstances) and step.load):
            await repo.record_plan(session, fleet, step.server_id, requirement)
    return None


async def _write_step(
    allocator: Allocator,
    session: AsyncSession,
    event: ScalingActionRequested,
    step: Step,
    triton_model: str,
    pools: dict[PoolKey, Pool],
) -> None:
    action = {"action_id": event.action_id}
    if isinstance(step, StartServer):
        pool = pools[(step.region, step.gpu_type)]
        price = await repo.price_per_gpu(session, allocator.fleet, pool)
        await repo.take_gpus(session, step.region, step.gpu_type, step.gpu_count, step.server_id)
        await session.execute(
            server.insert().values(
                server_id=step.server_id, region=step.region, gpu_type=step.gpu_type, gpu_count=step.gpu_count,
                state="starting", cost_per_hour=round(price * step.gpu_count, 4),
                pricing_class=pool.pricing_class.value, **action,
            )
        )  # fmt: skip
        await _add_placement(session, step.server_id, step.model_id, triton_model, step.instances, action)
    elif isinstance(step, AddInstances):
        if step.load:
            await _add_placement(session, step.server_id, step.model_id, triton_model, step.instances, action)
        else:
            await _resize(allocator, session, event, step.server_id, step.instances, triton_model)
    elif not step.unload:
        await _resize(allocator, session, event, step.server_id, -step.instances, triton_model)
    else:
        where = (placement.c.server_id == step.server_id) & (placement.c.model_id == step.model_id)
        await session.execute(placement.update().where(where).values(state="unloading", **action))
        if step.stop:
            await session.execute(
                server.update().where(server.c.server_id == step.server_id).values(state="stopping", **action)
            )


async def _add_placement(
    session: AsyncSession, server_id: str, model_id: str, triton_model: str, instances: int, action: dict[str, str]
) -> None:
    await session.execute(
        placement.insert().values(
            server_id=server_id,
            model_id=model_id,
            triton_model=triton_model,
            instances=instances,
            state="loading",
            **action,
        )
    )


async def _resize(
    allocator: Allocator, session: AsyncSession, event: ScalingActionRequested, server_id: str, change: int, name: str
) -> None:
    """More or fewer instances of a model already loaded: bookkeeping only, announced at once."""
    where = (placement.c.server_id == server_id) & (placement.c.model_id == event.model_id)
    now = await session.execute(
        placement.update()
        .where(where)
        .values(instances=placement.c.instances + change)
        .returning(placement.c.instances)
    )
    loaded = ModelLoaded(
        source="allocator", server_id=server_id, model_id=event.model_id, region=event.region,
        action_id=event.action_id, triton_model=name, instances=now.scalar_one(),
    )  # fmt: skip
    await allocator.announce(session, loaded, key=event.model_id)


async def _confirm(
    allocator: Allocator, session: AsyncSession, event: ScalingActionRequested, servers: list[Server], name: str
) -> None:
    """Already at the target: say where the model runs, so the scaler sees the action answered."""
    for held in (s for s in servers if s.region == event.region and s.placements.get(event.model_id)):
        loaded = ModelLoaded(
            source="allocator", server_id=held.server_id, model_id=event.model_id, region=event.region,
            action_id=event.action_id, triton_model=name, instances=held.placements[event.model_id],
        )  # fmt: skip
        await allocator.announce(session, loaded, key=event.model_id)


async def fail_action(
    allocator: Allocator, session: AsyncSession, action_id: str, model_id: str, region: str, reason: str
) -> None:
    """Mark the action failed and announce why (in the caller's transaction)."""
    await session.execute(
        scaling_action.update()
        .where(scaling_action.c.action_id == action_id)
        .values(state="failed", reason=reason[:2000])
    )
    failed = AllocationFailed(source="allocator", model_id=model_id, region=region, reason=reason, action_id=action_id)
    await allocator.announce(session, failed, key=model_id)
    allocator.metrics.allocations.labels("failed").inc()
    log.warning("action %s failed: %s", action_id, reason)


async def record_prices(allocator: Allocator, consumer: str, event: PricesPublished) -> bool:
    """Store the cost service's prices (used for the $/h of servers started from now on)."""
    async with allocator.sessions.begin() as session:
        if not await first_delivery(session, inbox, consumer, event.event_id):
            return False
        for price in event.prices:
            values = {"on_demand_per_hour": price.on_demand_per_hour, "spot_per_hour": price.spot_per_hour}
            values |= {"reserved_per_hour": price.reserved_per_hour}
            await session.execute(
                insert(gpu_price)
                .values(region=price.region, gpu_type=price.gpu_type, **values)
                .on_conflict_do_update(index_elements=["region", "gpu_type"], set_=values)
            )
    return True
