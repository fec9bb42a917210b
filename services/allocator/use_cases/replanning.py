"""The periodic re-plan, on one replica: the fleet MILP over what runs now, and moves that save enough.

Each move is written in one transaction under the region's lock, as planning writes an action:
a `replace-<server>-move-…` action (low priority: scaling the fleet comes first) with a new
server on the cheaper GPU type (`starting`, its GPUs taken) and its placement (`loading`); the old
server goes `draining` (no longer capacity, still serving). The provisioning worker starts the
new server; the reconciler stops the old one once the new one serves, or puts it back to
`running` if the move failed. `InstancesMoved` says what moves and what it saves.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

from services.allocator.domain.placement import place, preferred_share
from services.allocator.domain.planner import instance_throughput
from services.allocator.domain.reconciliation import replacement_prefix
from services.allocator.domain.replanning import Move, demands_of, freed, plan_moves
from services.allocator.domain.scaling import StartServer
from services.allocator.use_cases.allocator import Allocator
from services.allocator.use_cases.planning import write_step
from shared.events import ActionKind, InstancesMoved, ScalingActionRequested
from shared.leader import leading

log = logging.getLogger(__name__)
LOCK = "allocator.replan"
CONSUMER = "allocator.replan"  # the inbox name of the moves' actions


async def replan(allocator: Allocator) -> list[Move]:
    """One re-plan round on the leader replica; the moves started (none on the others)."""
    async with leading(allocator.sessions, LOCK) as leader:
        return await replan_once(allocator) if leader else []


async def replan_once(allocator: Allocator) -> list[Move]:
    """Place what runs now with the fleet MILP; start the moves that save at least `replan_min_saving_pct`."""
    settings = allocator.settings
    async with allocator.units.transaction() as repo:
        requirements = await repo.requirements()
        servers = [
            s for s in await repo.running_servers(settings.server_prefix) if set(s.placements) <= set(requirements)
        ]
        pools = await repo.pools()
        prices = {key: await repo.price_per_gpu(allocator.fleet, pool) for key, pool in pools.items()}
    if not servers:
        return []
    fleet = replace(allocator.fleet, models=requirements, pools=tuple(pools.values()))
    # Work, not instance counts: an instance on a slower type counts for what it serves there.
    demands = demands_of(servers, lambda model_id, gpu_type: preferred_share(fleet, model_id, gpu_type))
    # The solver runs off the event loop: its time budget is a second of CPU, not of the loop.
    optimum = await asyncio.to_thread(place, demands, fleet, freed(pools, servers), settings.replan_time_limit_s)
    moves = plan_moves(
        servers,
        optimum,
        pools,
        lambda region, gpu_type: prices[(region, gpu_type)],
        settings.replan_min_saving_pct,
        settings.replan_max_moves,
        lambda model_id, gpu_type: instance_throughput(requirements[model_id], fleet.gpus[gpu_type]),
    )
    started = [move for move in moves if await _start_move(allocator, move)]
    if started:
        log.info("re-plan (%s, $%.2f/h): moving %s", optimum.method, optimum.cost_per_hour, started)
        allocator.work_ready.set()
        await allocator.publish()
    return started


async def _start_move(allocator: Allocator, move: Move) -> bool:
    """Write the move's action, new server and placement, and drain the old server; False if it changed since."""
    settings = allocator.settings
    action_id = f"{replacement_prefix(move.server_id)}move-{allocator.new_suffix()}"
    new_id = f"{settings.server_prefix}-{move.region}-{allocator.new_suffix()}"
    async with allocator.units.transaction() as repo:
        pools = await repo.lock_region(move.region)
        requirement = (await repo.requirements())[move.model_id]
        if not await repo.mark_moving(move.server_id):
            return False  # no longer running (stopped, reclaimed, already moving)
        request = ScalingActionRequested(
            source="allocator", action_id=action_id, model_id=move.model_id, region=move.region,
            kind=ActionKind.SCALE_UP, current_instances=move.instances, target_instances=move.instances,
            priority="low", reason=f"move {move.server_id} to {move.to_gpu_type}: saves ${move.saving_per_hour}/h",
            rule="replan",
        )  # fmt: skip
        await repo.first_delivery(CONSUMER, request.event_id)
        await repo.record_action(request)
        step = StartServer(new_id, move.region, move.to_gpu_type, move.gpus, move.model_id, move.instances)
        await write_step(allocator, repo, request, step, requirement.repository_name, pools)
        await repo.record_plan(replace(allocator.fleet, pools=tuple(pools.values())), new_id, requirement)
        moved = InstancesMoved(
            source="allocator", model_id=move.model_id, region=move.region, from_server=move.server_id,
            from_gpu_type=move.from_gpu_type, to_server=new_id, to_gpu_type=move.to_gpu_type,
            quantisation=move.quantisation, instances=move.instances, saving_per_hour=move.saving_per_hour,
            action=action_id,
        )  # fmt: skip
        await repo.announce(moved, key=move.model_id)
    allocator.metrics.moves.inc()
    return True
