"""Allocating GPUs for one model in one region: the preferred type first, then any that fits.

An instance takes a share of a GPU (several fit one) or, when it is too big or too slow for one,
the GPUs of the best tensor- or pipeline-parallel plan (planner.gpu_share).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from services.allocator.domain.fleet import FleetConfig, ModelRequirement, Pool
from services.allocator.domain.planner import gpu_share, gpus_for

PoolKey = tuple[str, str]  # (region, gpu_type)


@dataclass(frozen=True)
class Allocation:
    """GPUs granted for a model: type, count and how many instances they hold."""

    model_id: str
    region: str
    gpu_type: str
    gpu_count: int
    max_instances: int
    gpu_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class AllocationRefused:
    """Why an allocation could not be made."""

    model_id: str
    region: str
    reason: str


def gpus_needed(instances: int, instances_per_gpu: int) -> int:
    """GPUs for `instances`: ceil(instances / instances per GPU)."""
    if instances_per_gpu < 1:
        raise ValueError("instances_per_gpu must be at least 1")
    return math.ceil(max(0, instances) / instances_per_gpu)


def candidate_types(
    requirement: ModelRequirement, region: str, fleet: FleetConfig, pools: Mapping[PoolKey, Pool]
) -> list[str]:
    """Types in `region` an instance fits fast enough: preferred, then one-GPU fits, then parallel; cheapest first."""
    shares = {
        gpu_type: share
        for (pool_region, gpu_type) in pools
        if pool_region == region
        and gpu_type in fleet.gpus
        and (share := gpu_share(requirement, fleet.gpus[gpu_type])) is not None
    }

    def order(gpu_type: str) -> tuple[bool, float, str]:
        # Spanning GPUs only when no single GPU will do; then by $/h per instance, not per GPU.
        return shares[gpu_type] > 1, fleet.price(region, gpu_type) * float(shares[gpu_type]), gpu_type

    others = sorted((t for t in shares if t != requirement.preferred_gpu), key=order)
    return ([requirement.preferred_gpu] if requirement.preferred_gpu in shares else []) + others


def allocate(
    requirement: ModelRequirement, instances: int, region: str, fleet: FleetConfig, pools: Mapping[PoolKey, Pool]
) -> Allocation | AllocationRefused:
    """GPUs for `instances` of the model in `region`, or the reason there are none. Never more than free."""
    if instances < 1:
        return AllocationRefused(requirement.model_id, region, "nothing to allocate: instances must be at least 1")
    types = candidate_types(requirement, region, fleet, pools)
    if not types:
        return AllocationRefused(
            requirement.model_id,
            region,
            f"no GPU type in {region} holds {requirement.min_memory_gb:g} GB (on one GPU or in parallel)"
            " within the latency target",
        )
    for gpu_type in types:
        share = gpu_share(requirement, fleet.gpus[gpu_type])
        assert share is not None  # candidate_types keeps only types with a share
        needed = gpus_for(instances, share)
        if needed <= pools[(region, gpu_type)].available:
            return Allocation(requirement.model_id, region, gpu_type, needed, math.floor(needed / share))
    free = ", ".join(f"{t} {pools[(region, t)].available} free" for t in types)
    return AllocationRefused(
        requirement.model_id,
        region,
        f"insufficient resources for {instances} instances of {requirement.model_id} in {region} ({free})",
    )


def apply(pools: Mapping[PoolKey, Pool], allocation: Allocation) -> dict[PoolKey, Pool]:
    """The pools after `allocation` (raises rather than over-allocate)."""
    key = (allocation.region, allocation.gpu_type)
    return {**pools, key: pools[key].take(allocation.gpu_count)}


def take_gpu_ids(free_ids: Sequence[str], count: int) -> tuple[str, ...]:
    """The first `count` free GPU ids in id order (deterministic, so a retry picks the same)."""
    chosen = sorted(free_ids)[:count]
    if len(chosen) < count:
        raise ValueError(f"only {len(chosen)} free GPU ids for {count} GPUs")
    return tuple(chosen)


def gpu_ids_for(pool: Pool, prefix: str | None = None) -> list[str]:
    """The ids of every GPU of a pool: `<region>/<gpu_type>/<n>`, zero-padded so they sort."""
    width = max(4, len(str(pool.total)))
    base = prefix or f"{pool.region}/{pool.gpu_type}"
    return [f"{base}/{n:0{width}d}" for n in range(pool.total)]
