"""The simulator's vectorised twins make the same decisions as the live policies, on random inputs."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from llmfleet.simulate.fleet import CLASSES, Fleet, scaled_fleet
from llmfleet.simulate.monitor import breaching, crossing
from llmfleet.simulate.options import REGIONS, Pricing
from llmfleet.simulate.pricing import Purchase, price_table
from llmfleet.simulate.routing import admission, best, scores
from services.allocator.adapters.config import load_fleet
from services.allocator.domain.fleet import ModelRequirement
from services.allocator.domain.scaling import Server, plan_scaling
from services.allocator.settings import DEFAULT_FLEET
from services.cost.domain.fleet import Server as CostServer
from services.cost.domain.fleet import fleet_cost
from services.cost.domain.pricing import Catalogue, PricingClass
from services.monitor.domain.alerts import AlertStatus, Phase, evaluate
from services.monitor.domain.rules import DEFAULT_RULES, Metric
from services.monitor.domain.signals import DEFAULT_SIGNAL_RULES, signals_for
from services.router.domain.admission import AdmissionLimits, ModelLoad, Verdict, admit
from services.router.domain.requests import Pending
from services.router.domain.scoring import Candidate, rank, score
from shared.events import RoutingStrategy

NOW = datetime(2026, 1, 7, tzinfo=UTC)
GPU_TYPES = ("a100_80gb", "h100_80gb", "v100_32gb")
MODELS = {
    "a": ModelRequirement("a", 14.0, "a100_80gb"),
    "b": ModelRequirement("b", 140.0, "h100_80gb"),  # spans two 80 GB GPUs
    "c": ModelRequirement("c", 26.0, "h100_80gb"),
}
candidate = st.tuples(
    st.sampled_from(REGIONS),
    st.sampled_from([0.0, 2.48, 4.1, 8.0, 12.0, 64.0]) | st.floats(0, 100),
    st.integers(1, 5000),
    st.integers(0, 6000),
    st.integers(0, 50),
    st.integers(0, 50),
)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(candidate, min_size=1, max_size=3, unique_by=lambda c: c[0]),
    st.sampled_from(REGIONS),
    st.sampled_from(list(RoutingStrategy)),
)
def test_the_routing_twin_scores_and_ranks_as_the_router(cands, user, strategy):
    live = [
        Candidate(region, region, cost, capacity, inflight, ok, failed)
        for region, cost, capacity, inflight, ok, failed in cands
    ]
    arrays = [np.zeros(len(REGIONS)) for _ in range(5)]
    present = np.zeros(len(REGIONS), dtype=bool)
    for c in live:
        i = REGIONS.index(c.region)
        present[i] = True
        for a, v in zip(arrays, (c.cost_per_hour, c.capacity, c.inflight, c.ok, c.failed), strict=True):
            a[i] = v
    u = REGIONS.index(user)
    twin = scores(u, strategy, *arrays)
    for c in live:
        assert twin[REGIONS.index(c.region)] == score(c, user, strategy)
    if not any(c.ok or c.failed for c in live):  # best() is the fluid router's: no failures in the sim
        chosen = best(u, strategy, arrays[0], arrays[1], arrays[2], present)
        assert REGIONS[int(chosen)] == rank(live, user, strategy)[0].region


@settings(max_examples=300, deadline=None)
@given(
    st.integers(0, 10_000),
    st.floats(0.1, 1000.0) | st.none(),
    st.integers(0, 100),
    st.booleans(),
    st.sampled_from(REGIONS),
)
def test_admission_batches_every_request_of_a_known_model(queued, rate, held_models, held, region):
    limits = AdmissionLimits(2000, ("*",), 50)
    request = Pending("r", "m", "", 1, 5.0, 1, region=region)
    live = admit(request, 5.0, ModelLoad(queued, True, rate, None, held_models, held), limits)
    assert live.verdict is Verdict.BATCH
    assert admission("m", region, 5.0, True, held, held_models, limits).verdict is live.verdict


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 100), st.booleans())
def test_admission_of_an_unknown_model_is_the_routers(held_models, held):
    limits = AdmissionLimits(2000, ("*",), 50)
    request = Pending("r", "m", "", 1, 5.0, 1, region="eu-west-1")
    live = admit(request, 5.0, ModelLoad(0, False, None, None, held_models, held), limits)
    assert admission("m", "eu-west-1", 5.0, False, held, held_models, limits).verdict is live.verdict


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(DEFAULT_RULES), st.floats(-1e4, 1e4, allow_nan=False))
def test_alerts_skipped_by_the_twin_would_have_stayed_ok(rule, value):
    status, change = evaluate(rule, value, NOW, AlertStatus())
    if not breaching(rule, np.array([value]))[0]:
        assert status.phase is Phase.OK and change is None
    else:
        assert status.phase is not Phase.OK


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(list(Metric)), st.floats(-1e4, 1e4, allow_nan=False))
def test_signals_skipped_by_the_twin_would_raise_nothing(metric, value):
    crossed = any(crossing(r, np.array([value]))[0] for r in DEFAULT_SIGNAL_RULES if r.metric is metric)
    assert bool(signals_for(metric, value)) == crossed


server = st.tuples(st.sampled_from(REGIONS), st.sampled_from(["a100_80gb", "h100_80gb", "v100_32gb"]),
                   st.integers(1, 8), st.sampled_from(CLASSES))  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(st.lists(server, max_size=30), st.integers(0, 20))
def test_the_cost_twin_prices_the_fleet_as_fleet_cost(servers, committed):
    catalogue = Catalogue()
    gpu_types = ("a100_80gb", "h100_80gb", "v100_32gb")
    in_use = np.zeros((3, 3, 3), dtype=np.int64)
    live = []
    for i, (region, gpu_type, gpus, pricing) in enumerate(servers):
        in_use[REGIONS.index(region), gpu_types.index(gpu_type), CLASSES.index(pricing)] += gpus
        live.append(CostServer(f"s{i}", region, gpu_type, gpus, pricing, 0.0, ("m",)))
    prices = price_table(catalogue, gpu_types)
    purchase = Purchase(Pricing.ON_DEMAND, prices, np.zeros((3, 3), np.int64), 0.7)
    assert abs(purchase.per_hour(in_use) - fleet_cost(live, catalogue).total) < 1e-4
    # Mixed pricing adds the reserved GPUs committed but not in use, paid all the same.
    reserved = np.full((3, 3), committed, dtype=np.int64)
    r = CLASSES.index(PricingClass.RESERVED)
    idle = (np.maximum(reserved - in_use[:, :, r], 0) * prices[:, :, r]).sum()
    mixed = Purchase(Pricing.MIXED, prices, reserved, 0.7)
    assert abs(mixed.per_hour(in_use) - fleet_cost(live, catalogue).total - idle) < 1e-4


placement = st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(1, 4))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["a100_80gb", "h100_80gb"]), st.integers(1, 8), st.lists(placement, max_size=3)),
             max_size=12),
    st.sampled_from(["a", "b", "c"]),
    st.integers(0, 40),
)  # fmt: skip
def test_planning_on_the_candidate_servers_plans_as_on_all_of_them(servers, model_id, target):
    fleet = Fleet(scaled_fleet(load_fleet(DEFAULT_FLEET), 60, []), {"a": 0, "b": 1, "c": 2}, GPU_TYPES,
                  np.array([[1, 1, 1], [2, 2, 4], [1, 1, 1]]))  # fmt: skip
    fleet.config = replace(fleet.config, models=MODELS)
    for i, (gpu_type, gpus, held) in enumerate(servers):
        placements: dict[str, int] = {}
        for m, n in held:
            if sum(k * (2 if x == "b" else 1) for x, k in placements.items()) + n * (2 if m == "b" else 1) <= gpus:
                placements[m] = placements.get(m, 0) + n
        if fleet.pools[("us-east-1", gpu_type)].available >= gpus:
            fleet.start(Server(f"s{i:02d}", "us-east-1", gpu_type, gpus, placements), PricingClass.ON_DEMAND, 0, 0)

    def plan(candidates: list[Server]) -> object:
        ids = iter(range(1000))
        return plan_scaling(MODELS[model_id], "us-east-1", target, candidates, fleet.config, fleet.pools,
                            lambda: f"new-{next(ids)}", max_servers=len(candidates) + 50)  # fmt: skip

    everything = list(fleet.by_region["us-east-1"].values())
    assert plan(fleet.candidates("us-east-1", model_id)) == plan(everything)
