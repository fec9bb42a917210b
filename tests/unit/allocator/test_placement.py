"""Fleet-wide placement: the MILP is never worse than greedy and honours memory and latency."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.allocator.domain.fleet import QUANT_MEMORY, FleetConfig, GpuSpec, ModelRequirement, Pool
from services.allocator.domain.placement import Demand, greedy_place, milp_place, place

BIG = ["gpt-4-turbo", "gpt-3.5-turbo", "claude-3-opus", "llama-2-70b", "llama-2-13b"]


def test_milp_moves_models_off_expensive_preferred_gpus_when_latency_allows(fleet, pools):
    demands = [Demand(m, "us-east-1", 10) for m in BIG]
    greedy = greedy_place(demands, fleet, pools)
    best = milp_place(demands, fleet, pools)
    assert best is not None and best.unserved_instances == 0 == greedy.unserved_instances
    # Greedy puts gpt-4-turbo and claude-3-opus on h100 at $8/h; a100 80 GB holds them for $4.10.
    assert {g.gpu_type for g in greedy.groups if g.model_id == "gpt-4-turbo"} == {"h100_80gb"}
    assert {g.gpu_type for g in best.groups if g.model_id == "gpt-4-turbo"} == {"a100_80gb"}
    assert best.cost_per_hour < greedy.cost_per_hour


def test_latency_target_keeps_a_model_on_fast_gpus_and_in_its_region(fleet, pools):
    # The performance model, one reference request: 1,593 ms on one h100; an a100 misses 1,700 ms
    # even in tensor parallel (2,207 ms alone, 1,863 ms on two).
    fast = replace(fleet.models["llama-2-13b"], latency_target_ms=1700)
    fleet = replace(fleet, models={**fleet.models, "llama-2-13b": fast})
    best = milp_place([Demand("llama-2-13b", "eu-west-1", 4)], fleet, pools)
    assert best is not None
    assert [(g.region, g.gpu_type, g.gpus) for g in best.groups] == [("eu-west-1", "h100_80gb", 4)]
    # 150 ms away, one h100 is too slow (1,593 + 150 ms); two in tensor parallel (1,337 + 150 ms) are
    # not, but cost more than eu-west-1's premium: the model stays in its users' region.
    assert best.cost_per_hour == pytest.approx(4 * 8.0 * 1.15)


def test_placement_respects_free_gpus_and_reports_unserved(fleet, pools):
    small = {k: replace(p, total=p.reserved + 1, available=1) for k, p in pools.items()}
    best = place([Demand("llama-2-70b", "us-east-1", 50)], fleet, small)
    for key, used in best.gpus_used().items():
        assert used <= small[key].available
    assert best.unserved_instances == 50 - sum(g.instances for g in best.groups) > 0


GPUS = {"h": GpuSpec("h", 80, 8.0, 1.0), "a": GpuSpec("a", 80, 4.1, 0.6), "v": GpuSpec("v", 32, 2.48, 0.35)}


@st.composite
def random_fleet(draw):
    regions = {"r1": 1.0, "r2": draw(st.sampled_from([1.05, 1.15, 1.25]))}
    pools = {}
    for region in regions:
        for name in GPUS:
            total = draw(st.integers(0, 30))
            pools[(region, name)] = Pool(region, name, total, draw(st.integers(0, total)))
    models = {}
    for i in range(draw(st.integers(1, 5))):
        target = draw(st.one_of(st.none(), st.sampled_from([150.0, 300.0, 600.0, 2000.0])))
        models[f"m{i}"] = ModelRequirement(
            f"m{i}",
            min_memory_gb=draw(st.sampled_from([10, 24, 40, 80])),
            preferred_gpu=draw(st.sampled_from(sorted(GPUS))),
            instances_per_gpu=draw(st.integers(1, 3)),
            latency_ms=draw(st.sampled_from([50.0, 100.0, 200.0])),
            latency_target_ms=target,
            quantisations=draw(st.sampled_from([("fp16",), ("fp16", "int8")])),
        )
    fleet = FleetConfig(GPUS, regions, tuple(pools.values()), models)
    demands = [Demand(m, r, draw(st.integers(0, 12))) for m in models for r in regions if draw(st.booleans())]
    return fleet, pools, demands


@given(random_fleet())
@settings(max_examples=60, deadline=None)
def test_milp_is_never_worse_than_greedy_on_random_fleets(case):
    fleet, pools, demands = case
    greedy = greedy_place(demands, fleet, pools)
    best = milp_place(demands, fleet, pools, time_limit_s=5.0)
    assert best is not None
    assert best.unserved_instances <= greedy.unserved_instances
    if best.unserved_instances == greedy.unserved_instances:
        # HiGHS stops within a relative gap of 1e-3 of the optimum (and the tie-break nudges).
        assert best.cost_per_hour <= greedy.cost_per_hour * (1 + 1e-3) + 0.01
    chosen = place(demands, fleet, pools)
    assert chosen.not_worse_than(greedy)
    for key, used in chosen.gpus_used().items():
        assert used <= pools[key].available
    for group in chosen.groups:
        requirement = fleet.models[group.model_id]
        memory = requirement.min_memory_gb * QUANT_MEMORY[group.quantisation]
        assert memory / max(1, group.share) <= fleet.gpus[group.gpu_type].memory_gb  # fits its GPUs
        assert group.instances * group.share <= group.gpus


def test_place_falls_back_to_greedy_when_the_solver_has_no_time(fleet, pools):
    demands = [Demand(m, r, 7) for m in BIG for r in ("us-east-1", "eu-west-1")]
    assert place(demands, fleet, pools, time_limit_s=0.0).not_worse_than(greedy_place(demands, fleet, pools))


@pytest.mark.parametrize("instances", [0, 1])
def test_empty_or_tiny_demand(fleet, pools, instances):
    best = place([Demand("echo", "us-east-1", instances)], fleet, pools)
    assert best.unserved_instances == 0
    assert sum(g.gpus for g in best.groups) == instances
