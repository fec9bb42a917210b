"""Turning a scaling action (bring a model in a region to N instances) into provisioning steps.

Scale up: fill servers already running the model, then start new servers on freshly allocated
GPUs (preferred type first) while the provisioner has room for more servers, then put the model
on other running servers that have room. It is all or nothing: when the target cannot be met,
the plan has no steps and says why. Scale down: take instances off the servers holding the
fewest first, so whole servers empty and can be stopped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

from services.allocator.domain.allocation import Allocation, PoolKey, allocate, apply
from services.allocator.domain.fleet import FleetConfig, GpuSpec, ModelRequirement, Pool
from services.allocator.domain.planner import gpu_share


@dataclass(frozen=True)
class Server:
    """A running server: its GPUs and the instances of each model on it."""

    server_id: str
    region: str
    gpu_type: str
    gpu_count: int
    placements: Mapping[str, int]


@dataclass(frozen=True)
class StartServer:
    server_id: str
    region: str
    gpu_type: str
    gpu_count: int
    model_id: str
    instances: int


@dataclass(frozen=True)
class AddInstances:
    server_id: str
    model_id: str
    instances: int
    load: bool  # the model is not on the server yet


@dataclass(frozen=True)
class RemoveInstances:
    server_id: str
    model_id: str
    instances: int
    unload: bool  # no instance of the model is left on the server
    stop: bool  # nothing is left on the server


Step = StartServer | AddInstances | RemoveInstances


@dataclass(frozen=True)
class ScalingPlan:
    """The steps of an action, or why it cannot be done (then there are no steps)."""

    steps: tuple[Step, ...] = ()
    failure: str | None = None
    # When the failure is a lack of GPUs: the pool it wanted (the preferred type) and GPUs missing there.
    shortfall: tuple[PoolKey, int] | None = None


def room_for(server: Server, requirement: ModelRequirement, fleet: FleetConfig) -> int:
    """More instances that fit on the server (each model takes its GPU share); 0 when too slow or big."""
    gpu = fleet.gpus[server.gpu_type]
    share = gpu_share(requirement, gpu)
    if share is None:
        return 0
    used = sum((n * _share_of(m, gpu, fleet) for m, n in server.placements.items()), Fraction(0))
    return max(0, math.floor((server.gpu_count - used) / share))


def _share_of(model_id: str, gpu: GpuSpec, fleet: FleetConfig) -> Fraction:
    requirement = fleet.models.get(model_id)
    share = gpu_share(requirement, gpu) if requirement is not None else None
    return share if share is not None else Fraction(1)  # requirements edited since: assume a whole GPU


def instances_of(model_id: str, region: str, servers: Sequence[Server]) -> int:
    """Instances of the model in the region now."""
    return sum(s.placements.get(model_id, 0) for s in servers if s.region == region)


def _scale_up(
    requirement: ModelRequirement,
    region: str,
    wanted: int,
    servers: Sequence[Server],
    fleet: FleetConfig,
    pools: Mapping[PoolKey, Pool],
    new_server_id: Callable[[], str],
    limits: tuple[int, int],
) -> ScalingPlan:
    max_servers, max_gpus_per_server = limits
    model_id, steps, left = requirement.model_id, list[Step](), wanted
    local = [s for s in servers if s.region == region]
    for server in (s for s in local if model_id in s.placements):
        if (add := min(left, room_for(server, requirement, fleet))) > 0:
            steps.append(AddInstances(server.server_id, model_id, add, load=False))
            left -= add
    refusal, live = None, len(servers)
    while left > 0 and live < max_servers:
        # A server holds at most max_gpus_per_server GPUs: ask for what fits on the preferred type.
        share = (
            gpu_share(requirement, fleet.gpus[requirement.preferred_gpu])
            if requirement.preferred_gpu in fleet.gpus
            else None
        )
        chunk = max(1, math.floor(max_gpus_per_server / share)) if share is not None else left
        result = allocate(requirement, min(left, chunk), region, fleet, pools)
        if not isinstance(result, Allocation):
            refusal = result.reason
            break
        pools, live = apply(pools, result), live + 1
        placed = min(left, result.max_instances)
        steps.append(StartServer(new_server_id(), region, result.gpu_type, result.gpu_count, model_id, placed))
        left -= placed
    for server in (s for s in local if model_id not in s.placements):
        if left > 0 and (add := min(left, room_for(server, requirement, fleet))) > 0:
            steps.append(AddInstances(server.server_id, model_id, add, load=True))
            left -= add
    if left > 0:
        reason = refusal or f"server limit reached ({max_servers} servers) and no running server in {region} has room"
        failure = f"cannot place {wanted} more instances of {model_id} in {region}: {reason}"
        return ScalingPlan((), failure, _shortfall(requirement, region, left, fleet, pools) if refusal else None)
    return ScalingPlan(tuple(steps))


def _shortfall(
    requirement: ModelRequirement, region: str, instances: int, fleet: FleetConfig, pools: Mapping[PoolKey, Pool]
) -> tuple[PoolKey, int] | None:
    """GPUs of the preferred type that `instances` more would take, when the region has such a pool."""
    key = (region, requirement.preferred_gpu)
    gpu = fleet.gpus.get(requirement.preferred_gpu)
    share = gpu_share(requirement, gpu) if gpu is not None else None
    if key not in pools or share is None:
        return None
    return key, max(1, math.ceil(instances * share))


def _scale_down(model_id: str, region: str, surplus: int, servers: Sequence[Server]) -> ScalingPlan:
    holding = sorted(
        (s for s in servers if s.region == region and s.placements.get(model_id, 0) > 0),
        key=lambda s: (s.placements[model_id], s.server_id),
    )
    steps: list[Step] = []
    for server in holding:
        if surplus <= 0:
            break
        have = server.placements[model_id]
        take = min(have, surplus)
        unload = take == have
        stop = unload and all(n == 0 for m, n in server.placements.items() if m != model_id)
        steps.append(RemoveInstances(server.server_id, model_id, take, unload, stop))
        surplus -= take
    return ScalingPlan(tuple(steps))


def plan_scaling(
    requirement: ModelRequirement,
    region: str,
    target: int,
    servers: Sequence[Server],
    fleet: FleetConfig,
    pools: Mapping[PoolKey, Pool],
    new_server_id: Callable[[], str],
    max_servers: int,
    max_gpus_per_server: int = 8,
) -> ScalingPlan:
    """The steps that bring the model in `region` to `target` instances (servers: every live one)."""
    current = instances_of(requirement.model_id, region, servers)
    if target > current:
        limits = (max_servers, max_gpus_per_server)
        return _scale_up(requirement, region, target - current, servers, fleet, pools, new_server_id, limits)
    if target < current:
        return _scale_down(requirement.model_id, region, current - target, servers)
    return ScalingPlan()
