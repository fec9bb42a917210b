"""The fleet loop's pieces: deployment plans, the MILP re-plan, reclaim notices and what they lose."""

from __future__ import annotations

import numpy as np
import pytest

from llmfleet.simulate.build import burst_factors, prepare
from llmfleet.simulate.catalogue import requirement
from llmfleet.simulate.fleet import Fleet, scaled_fleet
from llmfleet.simulate.loop import (
    allocatable,
    deployed_quantisation,
    deployed_requirement,
    lost_in_flight,
    preferred_equivalents,
    replan_region,
    slo_gpu_types,
    stop_taking_batches_at,
)
from llmfleet.simulate.options import Placement
from llmfleet.simulate.runs import run_policy
from llmfleet.simulate.summary import run_figures
from services.allocator.adapters.config import load_fleet
from services.allocator.domain.planner import gpu_share
from services.allocator.domain.scaling import Server
from services.allocator.settings import DEFAULT_FLEET
from services.cost.domain.pricing import PricingClass

from .conftest import small_options


def seed_fleet(gpus: int = 3350):
    return scaled_fleet(load_fleet(DEFAULT_FLEET), gpus, [])


def test_a_70b_deployed_at_int4_takes_one_gpu_where_fp16_takes_four():
    fleet = seed_fleet()
    model = requirement("m", "70b")
    quantisation = deployed_quantisation(model, fleet)
    assert quantisation in ("int8", "int4")
    deployed = deployed_requirement(model, quantisation)
    h100 = fleet.gpus["h100_80gb"]
    assert gpu_share(model, h100) == 4
    assert gpu_share(deployed, h100) == 1
    assert deployed.min_memory_gb < model.min_memory_gb / 2
    assert deployed_requirement(model, "fp16") is model


def test_the_replan_moves_a_70b_off_the_h100s_to_cheaper_a100s():
    fleet = seed_fleet()
    fleet = type(fleet)(**{**fleet.__dict__, "models": {"big": requirement("big", "70b")}})
    pools = {(p.region, p.gpu_type): p for p in fleet.pools}
    plan = replan_region({"big": 10}, "us-east-1", fleet, pools, 5.0)
    assert plan.method == "milp" and plan.unserved == 0
    # A100 TP2 ($8.2/h an instance) against H100 TP4 ($32/h): the MILP takes the cheaper instance.
    assert plan.types == {("big", "us-east-1"): "a100_80gb"}


def test_allocatable_pools_count_every_gpu_not_held_back():
    fleet = seed_fleet()
    pools = {(p.region, p.gpu_type): p.take(p.available) for p in fleet.pools}  # all in use
    free = allocatable(pools, "eu-west-1")
    assert {k[0] for k in free} == {"eu-west-1"}
    assert all(p.available == p.total - p.reserved > 0 for p in free.values())


def test_without_a_notice_every_request_in_flight_is_lost():
    samples = np.array([1.0, 2.0, 30.0, 200.0])
    assert lost_in_flight(3, 0.5, 8, samples, None) == pytest.approx(12.0)
    # With a 120 s drain window only the one sample in four longer than it is lost.
    assert lost_in_flight(3, 0.5, 8, samples, 120.0) == pytest.approx(3.0)
    assert lost_in_flight(3, 0.5, 8, samples, 300.0) == 0.0
    assert lost_in_flight(3, 1.7, 8, samples, None) == pytest.approx(24.0)  # busy share capped at 1


def test_a_reclaimed_server_serves_until_its_replacement_does_but_leaves_time_to_drain():
    assert stop_taking_batches_at(0.0, 120.0, 30.0, 20.0) == 30.0  # replacement first
    assert stop_taking_batches_at(0.0, 120.0, 110.0, 20.0) == 100.0  # drain window wins
    assert stop_taking_batches_at(0.0, 120.0, None, 20.0) == 100.0  # no replacement: as late as it can
    assert stop_taking_batches_at(0.0, 120.0, 30.0, 500.0) == 0.0  # never before the notice


def test_a_detached_server_is_paid_until_released_and_plans_never_see_it():
    config = seed_fleet(1000)
    fleet = Fleet(config, {"a": 0}, ("a100_80gb", "h100_80gb", "v100_32gb"), np.ones((1, 3), dtype=np.int64))
    free = fleet.pools[("us-east-1", "a100_80gb")].available
    fleet.start(Server("s1", "us-east-1", "a100_80gb", 2, {"a": 2}), PricingClass.SPOT, 0.0, 10.0)
    fleet.finish_loads(10.0)
    fleet.detach("s1")
    assert fleet.candidates("us-east-1", "a") == []
    assert fleet.ready[0, 0, 0] == 2  # still serving through the notice
    assert fleet.stop_serving("s1") == {"a": 2}
    assert fleet.ready.sum() == 0 and fleet.gpus_by_class.sum() == 2  # drained, still paid
    fleet.release("s1")
    assert fleet.gpus_by_class.sum() == 0 and "s1" not in fleet.servers
    assert fleet.pools[("us-east-1", "a100_80gb")].available == free


def test_with_the_notice_reclaims_are_replaced_and_lose_far_fewer_requests():
    hazard = small_options(spot_reclaims_per_hour=2.0)
    prepared = prepare(hazard)
    bare = run_policy(prepared, hazard)
    handled = run_policy(prepared, small_options(spot_reclaims_per_hour=2.0, reclaim_notice_s=120.0))
    assert bare.counts["spot_reclaims"] > 10 and handled.counts["spot_reclaims"] > 10
    assert handled.counts["replacements"] >= handled.counts["spot_reclaims"]
    assert handled.counts["requests_lost_to_reclaims"] < 0.1 * bare.counts["requests_lost_to_reclaims"]
    assert handled.queued_at_end + handled.held_at_end >= 0


def test_plans_and_the_milp_run_and_replan_every_interval():
    options = small_options(plans=True, placement=Placement.MILP, replan_interval_s=1800.0)
    prepared = prepare(options)
    assert set(prepared.quantisations) <= {"fp16", "int8", "int4"} and len(prepared.quantisations) == 6
    assert "int4" in prepared.quantisations or "int8" in prepared.quantisations
    result = run_policy(prepared, options)
    assert result.counts.get("replan_milp", 0) + result.counts.get("replan_greedy", 0) == 4 * 3  # 2 h, 3 regions
    fp16 = prepare(small_options())
    # Quantised instances of the same models serve more per GPU on the preferred types.
    m = [i for i, q in enumerate(prepared.quantisations) if q != "fp16"]
    per_gpu = prepared.table.capacity_rps / np.maximum(prepared.table.gpus, 1)
    base = fp16.table.capacity_rps / np.maximum(fp16.table.gpus, 1)
    assert (per_gpu[m, 0] >= base[m, 0]).all() and (per_gpu[m, 0] > base[m, 0]).any()


def test_the_replan_demands_instances_of_the_preferred_type_that_serve_what_is_held():
    held = np.array([[0, 4, 0], [3, 0, 0], [0, 0, 0]])  # [model, gpu type]
    capacity = np.array([[2.0, 1.0, 4.0], [1.0, 0.0, 0.0], [1.0, 1.0, 1.0]])  # what one instance serves
    # Model a prefers type 0: 4 instances at 1.0 serve what 2 at 2.0 do; b holds 3 of its own.
    assert preferred_equivalents(held, capacity, [0, 0, 0], ["a", "b", "c"]) == {"a": 2, "b": 3}
    # a preferring the fast type 2 needs one there; b's type 1 cannot run it: its fastest type's unit.
    assert preferred_equivalents(held, capacity, [2, 1, 0], ["a", "b", "c"]) == {"a": 1, "b": 3}


def test_a_gpu_type_whose_first_token_misses_the_slo_more_than_the_best_is_left_to_others():
    prefill = np.array([[0.5, 1.0, 1.5, 1.9], [0.5, 1.0, 2.5, 3.0], [0.1, 0.1, 0.1, 0.1]])  # [type, sample]
    gpus = np.array([1, 1, 0])
    assert slo_gpu_types(prefill, gpus, 2.0, ("fast", "slow", "absent")) == ("fast",)
    assert slo_gpu_types(prefill, gpus, 2.0, ("fast", "slow", "absent"), tolerance=0.5) == ("fast", "slow")
    assert slo_gpu_types(prefill, gpus, 5.0, ("fast", "slow", "absent")) == ("fast", "slow")


def test_the_burst_factor_is_the_quantile_of_steps_over_their_hours_mean():
    steps = 360  # one hour of 10 s steps
    arrivals = np.zeros((steps, 2, 3))
    arrivals[:, 0, :] = 5.0  # steady
    arrivals[::2, 1, 0] = 2.0  # every other step: bursts at twice the mean
    factors = burst_factors(arrivals, 10.0, 0.95)
    assert factors[0] == pytest.approx(1.0)
    assert factors[1] == pytest.approx(2.0)
    assert (burst_factors(arrivals[:10], 10.0, 0.95) == 1.0).all()  # under an hour: no factor


def test_every_slo_miss_has_one_cause_and_the_headroom_buys_attainment():
    options = small_options()
    prepared = prepare(options)
    plain = run_figures(run_policy(prepared, options))
    misses = plain["slo_misses"]
    assert set(misses) == {"service", "cold_start", "queueing", "rejected"}
    assert plain["slo_attainment"] + sum(v or 0.0 for v in misses.values()) == pytest.approx(1.0, abs=1e-4)
    groups = plain["slo_by_model_group"]
    assert sum(g["requests"] for g in groups.values()) == pytest.approx(
        plain["requests"]["served"] + plain["requests"]["rejected"], abs=len(groups)
    )
    headroom = run_figures(run_policy(prepared, small_options(burst_quantile=0.99)))
    assert headroom["gpu_hours"] >= plain["gpu_hours"]
    assert (headroom["slo_misses"]["queueing"] or 0.0) <= (misses["queueing"] or 0.0)
