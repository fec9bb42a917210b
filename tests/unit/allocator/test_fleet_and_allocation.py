"""Inventory and allocation: the issue's defaults, preferred type first, fallback only when it fits."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.allocator.domain.allocation import (
    Allocation,
    AllocationRefused,
    allocate,
    apply,
    candidate_types,
    gpu_ids_for,
    gpus_needed,
    take_gpu_ids,
)
from services.allocator.domain.fleet import FleetConfig, GpuSpec, ModelRequirement, Pool, PricingClass
from services.allocator.domain.planner import gpu_share, gpus_for


def test_seed_is_the_issues_fleet(fleet, pools):
    assert sum(p.total for p in fleet.pools) == 3350
    us_a100 = pools[("us-east-1", "a100_80gb")]
    assert (us_a100.total, us_a100.available, us_a100.reserved, us_a100.allocated) == (1000, 800, 200, 0)
    assert (pools[("ap-southeast-1", "v100_32gb")].available, pools[("eu-west-1", "h100_80gb")].reserved) == (40, 60)
    assert fleet.models["gpt-3.5-turbo"].instances_per_gpu == 2
    assert fleet.models["echo"].repository_name == "echo"


def test_prices_follow_region_multiplier_and_pricing_class(fleet):
    assert fleet.price("us-east-1", "h100_80gb") == 8.00
    assert fleet.price("ap-southeast-1", "a100_80gb") == pytest.approx(4.10 * 1.25)
    assert fleet.price("eu-west-1", "v100_32gb", PricingClass.SPOT) == pytest.approx(2.48 * 1.15 * fleet.spot_factor)


@pytest.mark.parametrize(("instances", "per_gpu", "gpus"), [(1, 1, 1), (3, 2, 2), (4, 2, 2), (0, 2, 0), (9, 4, 3)])
def test_gpus_needed_is_the_ceiling(instances, per_gpu, gpus):
    assert gpus_needed(instances, per_gpu) == gpus


def test_preferred_type_first(fleet, pools):
    result = allocate(fleet.models["gpt-3.5-turbo"], 5, "us-east-1", fleet, pools)
    assert result == Allocation("gpt-3.5-turbo", "us-east-1", "a100_80gb", 5, 5)  # 52 GB each: one per GPU


def test_fallback_to_cheapest_type_with_enough_memory(fleet, pools):
    pools[("eu-west-1", "h100_80gb")] = replace(pools[("eu-west-1", "h100_80gb")], available=2)
    result = allocate(fleet.models["gpt-4-turbo"], 3, "eu-west-1", fleet, pools)
    # gpt-4-turbo (a dense 280B in the performance model, 584 GB with its KV cache) spans 8 GPUs in
    # tensor parallel: 2 free h100s are too few, the fallback is the a100.
    assert isinstance(result, Allocation) and (result.gpu_type, result.gpu_count) == ("a100_80gb", 24)
    # v100s (32 GB) cannot hold it even eight-way.
    types = candidate_types(fleet.models["gpt-4-turbo"], "eu-west-1", fleet, pools)
    assert types == ["h100_80gb", "a100_80gb"]


def test_a_model_no_gpu_holds_spans_gpus_by_the_planner(fleet, pools):
    big = ModelRequirement("llama-2-70b-fp16", 140, "a100_80gb", latency_ms=700)
    result = allocate(big, 3, "us-east-1", fleet, pools)
    # 140 GB needs two 80 GB GPUs: pipeline parallel 2 has the best cost per throughput.
    assert result == Allocation("llama-2-70b-fp16", "us-east-1", "a100_80gb", 6, 3)
    fast = replace(big, latency_target_ms=1000)  # 700 / 0.6 x 1.05 x 1.05 = 1,286 ms: too slow piped
    result = allocate(fast, 3, "us-east-1", fleet, pools)
    assert isinstance(result, Allocation) and (result.gpu_type, result.gpu_count) == ("a100_80gb", 6)  # tp2: 674 ms
    assert isinstance(allocate(replace(big, latency_target_ms=50), 1, "us-east-1", fleet, pools), AllocationRefused)


def test_refusal_says_why(fleet, pools):
    result = allocate(fleet.models["llama-2-70b"], 1000, "ap-southeast-1", fleet, pools)
    assert isinstance(result, AllocationRefused)
    assert "insufficient resources" in result.reason and "a100_80gb 320 free" in result.reason


def test_gpu_ids_are_stable_and_never_reused(fleet, pools):
    ids = gpu_ids_for(pools[("us-east-1", "v100_32gb")])
    assert len(ids) == 200 and len(set(ids)) == 200 and ids[0] == "us-east-1/v100_32gb/0000"
    assert take_gpu_ids(list(reversed(ids)), 2) == (ids[0], ids[1])
    with pytest.raises(ValueError, match="only 1"):
        take_gpu_ids(ids[:1], 2)


def test_pool_refuses_to_go_negative():
    pool = Pool("r", "a100_80gb", total=4, available=1, reserved=1)
    with pytest.raises(ValueError):
        pool.take(2)
    assert pool.take(1).give_back(1) == pool


GPUS = {
    "big": GpuSpec("big", 80, 8.0, 1.0),
    "mid": GpuSpec("mid", 48, 4.0, 0.6),
    "small": GpuSpec("small", 24, 2.0, 0.3),
}


@st.composite
def scenario(draw):
    pools = {
        ("r", name): Pool("r", name, total=(n := draw(st.integers(0, 12))), available=draw(st.integers(0, n)))
        for name in GPUS
    }
    models = [
        ModelRequirement(
            f"m{i}",
            min_memory_gb=draw(st.sampled_from([8, 20, 24, 40, 48, 80])),
            preferred_gpu=draw(st.sampled_from(sorted(GPUS))),
            instances_per_gpu=draw(st.integers(1, 3)),
        )
        for i in range(draw(st.integers(1, 4)))
    ]
    fleet = FleetConfig(GPUS, {"r": 1.0}, tuple(pools.values()), {m.model_id: m for m in models})
    requests = draw(st.lists(st.tuples(st.sampled_from(models), st.integers(1, 15)), max_size=12))
    return fleet, pools, requests


@given(scenario())
@settings(max_examples=200, deadline=None)
def test_allocations_never_exceed_free_capacity_and_respect_memory(case):
    fleet, pools, requests = case
    start = dict(pools)
    granted: dict[tuple[str, str], int] = {}
    for requirement, instances in requests:
        result = allocate(requirement, instances, "r", fleet, pools)
        if isinstance(result, Allocation):
            gpu = fleet.gpus[result.gpu_type]
            share = gpu_share(requirement, gpu)
            assert share is not None and requirement.min_memory_gb / max(1, share) <= gpu.memory_gb  # enough memory
            if share > 1 and result.gpu_type != requirement.preferred_gpu:
                # spanning GPUs is the last resort: no free type held an instance on one GPU
                for name, spec in GPUS.items():
                    one = gpu_share(requirement, spec)
                    if one is not None and one <= 1:
                        assert pools[("r", name)].available < gpus_for(instances, one)
            assert result.max_instances >= instances
            preferred = pools[("r", requirement.preferred_gpu)]
            if (preferred_share := gpu_share(requirement, GPUS[requirement.preferred_gpu])) is not None:
                wanted_on_preferred = gpus_for(instances, preferred_share)
                # preferred type first: skipped only when it has too few free GPUs
                assert result.gpu_type == requirement.preferred_gpu or preferred.available < wanted_on_preferred
            pools = apply(pools, result)
            key = ("r", result.gpu_type)
            granted[key] = granted.get(key, 0) + result.gpu_count
        else:
            assert result.reason
    for key, pool in pools.items():
        assert pool.available >= 0
        assert granted.get(key, 0) <= start[key].available
        assert pool.available == start[key].available - granted.get(key, 0)


def test_a_pool_may_name_its_pricing_class(fleet):
    from services.allocator.domain.fleet import fleet_from_mapping

    data = {
        "gpu_types": {"a100_80gb": {"memory_gb": 80, "on_demand_per_hour": 4.1}},
        "regions": {"r": 1.0},
        "pools": {"r": {"a100_80gb": [10, 8, 2, "spot"]}},
    }
    spot = fleet_from_mapping(data)
    assert spot.pools[0].pricing_class is PricingClass.SPOT and spot.pools[0].allocated == 0
    with pytest.raises(ValueError, match="unknown GPU types"):
        fleet_from_mapping({**data, "pools": {"r": {"tpu": [1, 1, 0]}}})
