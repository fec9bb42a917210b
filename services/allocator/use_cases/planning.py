"""Planning a scaling action in one transaction; `provisioning.carry_out` then makes it real.

The planning transaction records the action (idempotency by action id, inbox by event id),
locks the region's pools, plans, takes the GPUs and writes the servers and placements in their
"starting / loading / unloading / stopping" states. `provisioning.carry_out` then starts and
stops the real servers and loads and unloads the models, committing each result with its event
in the outbox, so an event goes out only once the change is committed and real. A redelivered
action that finished changes nothing; one that was interrupted is carried on from the rows.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from services.allocator.adapters.repository import AllocatorRepository
from services.allocator.domain.allocation import PoolKey
from services.allocator.domain.capacity import server_class
from services.allocator.domain.fleet import Pool, PricingClass
from services.allocator.domain.scaling import AddInstances, Server, StartServer, Step, plan_scaling
from services.allocator.use_cases.allocator import Allocator
from shared.events import ActionKind, AllocationFailed, ModelLoaded, ScalingActionRequested

log = logging.getLogger(__name__)


async def plan_action(allocator: Allocator, consumer: str, event: ScalingActionRequested) -> bool:
    """Record and plan the action in one transaction; True when there is work to carry out."""
    async with allocator.units.transaction() as repo:
        await repo.first_delivery(consumer, event.event_id)
        if not await repo.record_action(event):
            # Seen before (a redelivery, or the scaler sent it again): carry on only if it was cut short.
            allocator.metrics.allocations.labels("duplicate").inc()
            return await repo.action_state(event.action_id) == "in_progress"
        failure = await _plan(allocator, repo, event)
        if failure is not None:
            await fail_action(allocator, repo, event.action_id, event.model_id, event.region, failure)
    await allocator.publish()
    return failure is None


async def _plan(allocator: Allocator, repo: AllocatorRepository, event: ScalingActionRequested) -> str | None:
    """Plan under the region's pool locks and write the steps; the failure reason, if any."""
    pools = await repo.lock_region(event.region)
    requirements = await repo.requirements()
    requirement = requirements.get(event.model_id)
    if requirement is None:
        return f"unknown model {event.model_id}: no requirements on record"
    if not pools:
        return f"no GPU pools in region {event.region}"
    servers, running = await repo.live_servers(allocator.settings.server_prefix)
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
        if plan.shortfall is not None:  # the cluster autoscaler grows the pool by what was missed
            pool, gpus = plan.shortfall
            allocator.shortfalls[pool] = allocator.shortfalls.get(pool, 0) + gpus
        return plan.failure
    if not plan.steps:
        await _confirm(repo, event, servers, requirement.repository_name)
    for step in plan.steps:
        await write_step(allocator, repo, event, step, requirement.repository_name, pools)
        if isinstance(step, StartServer) or (isinstance(step, AddInstances) and step.load):
            await repo.record_plan(fleet, step.server_id, requirement)
    return None


async def write_step(
    allocator: Allocator,
    repo: AllocatorRepository,
    event: ScalingActionRequested,
    step: Step,
    triton_model: str,
    pools: dict[PoolKey, Pool],
) -> None:
    """Write one planned step's rows in the caller's transaction (GPUs taken, servers and placements pending)."""
    action_id = event.action_id
    if isinstance(step, StartServer):
        pool = pools[(step.region, step.gpu_type)]
        # Priced by the classes of the GPUs it takes (a capacity change may have mixed the pool's).
        taken = await repo.take_gpus(step.region, step.gpu_type, step.gpu_count, step.server_id)
        classes = await repo.gpu_classes(taken)
        cost = 0.0
        for name, n in sorted(classes.items()):
            cost += n * await repo.price_per_gpu(allocator.fleet, replace(pool, pricing_class=PricingClass(name)))
        await repo.add_server(step, round(cost, 4), server_class(classes), action_id)
        await repo.add_placement(step.server_id, step.model_id, triton_model, step.instances, action_id)
    elif isinstance(step, AddInstances):
        if step.load:
            await repo.add_placement(step.server_id, step.model_id, triton_model, step.instances, action_id)
        else:
            await _resize(repo, event, step.server_id, step.instances, triton_model)
    elif not step.unload:
        await _resize(repo, event, step.server_id, -step.instances, triton_model)
    else:
        await repo.mark_placement(step.server_id, step.model_id, "unloading", action_id=action_id)
        if step.stop:
            await repo.mark_server(step.server_id, "stopping", action_id=action_id)


async def _resize(
    repo: AllocatorRepository, event: ScalingActionRequested, server_id: str, change: int, name: str
) -> None:
    """More or fewer instances of a model already loaded: bookkeeping only, announced at once."""
    instances = await repo.resize_placement(server_id, event.model_id, change)
    loaded = ModelLoaded(
        source="allocator", server_id=server_id, model_id=event.model_id, region=event.region,
        action_id=event.action_id, triton_model=name, instances=instances,
    )  # fmt: skip
    await repo.announce(loaded, key=event.model_id)


async def _confirm(repo: AllocatorRepository, event: ScalingActionRequested, servers: list[Server], name: str) -> None:
    """Already at the target: say where the model runs, so the scaler sees the action answered."""
    for held in (s for s in servers if s.region == event.region and s.placements.get(event.model_id)):
        loaded = ModelLoaded(
            source="allocator", server_id=held.server_id, model_id=event.model_id, region=event.region,
            action_id=event.action_id, triton_model=name, instances=held.placements[event.model_id],
        )  # fmt: skip
        await repo.announce(loaded, key=event.model_id)


async def fail_action(
    allocator: Allocator, repo: AllocatorRepository, action_id: str, model_id: str, region: str, reason: str
) -> None:
    """Mark the action failed and announce why (in the caller's transaction)."""
    await repo.fail_action(action_id, reason[:2000])
    failed = AllocationFailed(source="allocator", model_id=model_id, region=region, reason=reason, action_id=action_id)
    await repo.announce(failed, key=model_id)
    allocator.metrics.allocations.labels("failed").inc()
    log.warning("action %s failed: %s", action_id, reason)
