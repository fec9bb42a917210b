"""Carrying out the cost service's capacity changes: a pool's GPUs per pricing class, once per request.

An operator applied a cost recommendation (`llmfleet cost apply`); the cost service sent a
`CapacityChangeRequested`. In one transaction: the inbox row; the audit row keyed by the request id
(a request sent again changes nothing); the pool locked as planning locks it; the pure rules
(`domain/capacity.py`) decide; the GPUs change class, leave or join the pool with its counters;
running servers a commitment now covers are repriced; and a `CapacityChanged` (applied or refused,
with the reason) is queued for the cost service, whose next report shows it.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Literal, cast

from services.allocator.domain.capacity import (
    CapacityPlan,
    GpuOnRecord,
    classes_after,
    describe,
    new_gpu_ids,
    plan_capacity_change,
)
from services.allocator.domain.fleet import PricingClass
from services.allocator.use_cases.allocator import Allocator
from shared.events import CapacityChanged, CapacityChangeRequested, RepricedServer

log = logging.getLogger(__name__)
ClassName = Literal["on_demand", "spot", "reserved"]


async def change_capacity(
    allocator: Allocator, consumer: str, event: CapacityChangeRequested
) -> CapacityChanged | None:
    """Carry out (or refuse) the request once; the announced result, None for a repeat."""
    async with allocator.units.transaction() as repo:
        if not await repo.first_delivery(consumer, event.event_id):
            return None
        if await repo.capacity_change_on_record(event.request_id):
            log.info("capacity change %s is on record already: nothing to do", event.request_id)
            return None
        pool, gpus, live = await repo.lock_pool(event.region, event.gpu_type)
        if pool is None:
            plan = CapacityPlan(refused=f"no GPU pool {event.region}/{event.gpu_type}")
        else:
            plan = plan_capacity_change(gpus, {str(c): n for c, n in event.changes.items()}, live)
        repriced: list[RepricedServer] = []
        if pool is not None and plan.applied:
            await repo.apply_capacity_plan(
                event.region,
                event.gpu_type,
                plan,
                new_gpu_ids(event.region, event.gpu_type, event.request_id, plan.buy),
            )
            for server_id, target in sorted(plan.repriced.items()):
                held = sum(1 for g in gpus if g.server_id == server_id)
                price = await repo.price_per_gpu(allocator.fleet, replace(pool, pricing_class=PricingClass(target)))
                cost = round(price * held, 4)
                await repo.reprice_server(server_id, target, cost)
                repriced.append(RepricedServer(server_id=server_id, pricing_class=_cls(target), cost_per_hour=cost))
        result: Literal["applied", "refused"] = "applied" if plan.applied else "refused"
        await repo.record_capacity_change(event, result, plan.refused, describe(gpus, plan))
        changed = _announcement(event, plan, gpus, repriced)
        await repo.announce(changed, key=f"{event.region}:{event.gpu_type}")
    if plan.applied:
        log.info(
            "capacity change %s applied to %s/%s: %s", event.request_id, event.region, event.gpu_type, plan.changes
        )
    else:
        log.warning("capacity change %s refused: %s", event.request_id, plan.refused)
    await allocator.publish()
    return changed


def _cls(name: str) -> ClassName:
    return cast(ClassName, name)


def _announcement(
    event: CapacityChangeRequested, plan: CapacityPlan, gpus: list[GpuOnRecord], repriced: list[RepricedServer]
) -> CapacityChanged:
    return CapacityChanged(
        source="allocator",
        request_id=event.request_id,
        recommendation_id=event.recommendation_id,
        region=event.region,
        gpu_type=event.gpu_type,
        result="applied" if plan.applied else "refused",
        reason=plan.refused,
        changes={_cls(c): n for c, n in plan.changes.items()},
        gpus_by_class={_cls(c): n for c, n in classes_after(gpus, plan).items()},
        repriced=repriced,
        commitment_months=event.commitment_months if plan.applied else None,
    )
