"""The periodic re-plan: the fleet MILP over what runs, and moves to cheaper GPUs, made before they break."""

from __future__ import annotations

import itertools
from fractions import Fraction

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker

from services.allocator.adapters.metrics import AllocatorMetrics
from services.allocator.domain.fleet import Pool, PricingClass, fleet_from_mapping
from services.allocator.domain.placement import Group, Placement, preferred_share
from services.allocator.domain.reconciliation import conservation_violations
from services.allocator.domain.replanning import RunningServer, demands_of, freed, plan_moves
from services.allocator.settings import AllocatorSettings
from services.allocator.use_cases import planning, provisioning, replanning
from services.allocator.use_cases.allocator import Allocator
from services.allocator.use_cases.reconciling import Reconciler
from shared.events import ActionKind, FleetRepaired, InstancesMoved, ScalingActionRequested
from shared.metrics import new_registry
from tests.unit.allocator.fakes import FakeProvisioner, FakeRelay, FakeUnitOfWork, seeded

REGION = "r1"
PRICES = {"a100_80gb": 4.0, "h100_80gb": 8.0}


def running(server_id: str, gpu_type: str, instances: int, models: int = 1, gpus: int = 1) -> RunningServer:
    placed = {f"m{i}": instances for i in range(models)}
    return RunningServer(server_id, REGION, gpu_type, gpus, PRICES[gpu_type] * gpus, placed)


def optimum(*groups: tuple[str, str, int, int]) -> Placement:
    built = tuple(
        Group(model, REGION, gpu_type, "fp16", n, gpus, Fraction(gpus, n)) for model, gpu_type, n, gpus in groups
    )
    return Placement("milp", built, 0.0, {})


def pools(free_a100: int = 4) -> dict[tuple[str, str], Pool]:
    return {
        (REGION, "a100_80gb"): Pool(REGION, "a100_80gb", 8, free_a100, 0, PricingClass.ON_DEMAND),
        (REGION, "h100_80gb"): Pool(REGION, "h100_80gb", 8, 6, 0, PricingClass.ON_DEMAND),
    }


def price(region: str, gpu_type: str) -> float:
    return PRICES[gpu_type]


def test_a_server_on_a_type_the_optimum_does_not_use_moves_when_it_saves_enough():
    servers = [running("s1", "h100_80gb", 2)]
    (move,) = plan_moves(servers, optimum(("m0", "a100_80gb", 2, 1)), pools(), price, 10.0, 1)
    assert (move.server_id, move.from_gpu_type, move.to_gpu_type, move.gpus) == ("s1", "h100_80gb", "a100_80gb", 1)
    assert move.saving_per_hour == 4.0
    assert plan_moves(servers, optimum(("m0", "a100_80gb", 2, 1)), pools(), price, 60.0, 1) == []  # saves 50%
    assert plan_moves(servers, optimum(("m0", "h100_80gb", 2, 1)), pools(), price, 10.0, 1) == []  # already there
    assert plan_moves(servers, optimum(("m0", "a100_80gb", 2, 1)), pools(free_a100=0), price, 10.0, 1) == []
    shared = [running("s2", "h100_80gb", 1, models=2)]  # two models: they would have to move together
    assert (
        plan_moves(shared, optimum(("m0", "a100_80gb", 1, 1), ("m1", "a100_80gb", 1, 1)), pools(), price, 10, 1) == []
    )


def test_a_move_to_a_slower_type_takes_enough_instances_to_serve_as_much():
    speed = {"h100_80gb": 1.0, "a100_80gb": 0.6}
    servers = [running("s1", "h100_80gb", 2)]
    best = optimum(("m0", "a100_80gb", 4, 1))  # 4 instances share one A100
    (move,) = plan_moves(servers, best, pools(), price, 10.0, 1, lambda m, g: speed[g])
    assert (move.instances, move.gpus, move.saving_per_hour) == (4, 1, 4.0)  # ceil(2 / 0.6) on one A100
    slow = {"h100_80gb": 1.0, "a100_80gb": 0.2}  # 10 instances on 3 A100s: dearer than the H100
    assert plan_moves(servers, best, pools(), price, 10.0, 1, lambda m, g: slow[g]) == []


def test_at_most_max_moves_the_largest_savings_first():
    servers = [running("small", "h100_80gb", 1), running("big", "h100_80gb", 4, gpus=2)]
    best = optimum(("m0", "a100_80gb", 5, 3))
    (move,) = plan_moves(servers, best, pools(), price, 10.0, 1)
    assert move.server_id == "big" and move.saving_per_hour == 16.0 - 3 * 4.0


def test_the_re_plan_sees_running_gpus_as_free_and_running_instances_as_demand():
    servers = [running("s1", "h100_80gb", 2), running("s2", "h100_80gb", 3)]
    assert [(d.model_id, d.instances) for d in demands_of(servers)] == [("m0", 5)]
    assert freed(pools(), servers)[(REGION, "h100_80gb")].available == 8


def test_instances_on_a_slower_type_are_demanded_as_the_preferred_type_instances_they_serve_as():
    servers = [running("s1", "h100_80gb", 2), running("s2", "a100_80gb", 3)]
    share = {"h100_80gb": 1.0, "a100_80gb": 0.6}
    # 2 x 1.0 + 3 x 0.6 = 3.8 preferred instances' work: 4 demanded, not 5.
    assert [(d.model_id, d.instances) for d in demands_of(servers, lambda m, g: share[g])] == [("m0", 4)]


def test_preferred_share_is_an_instance_rate_over_the_preferred_types(fleet):
    config = fleet[0].fleet
    # echo-m prefers the h100 (relative speed 1.0) and packs 4 to a GPU on either type.
    assert preferred_share(config, "echo-m", "h100_80gb") == pytest.approx(1.0)
    assert preferred_share(config, "echo-m", "a100_80gb") == pytest.approx(0.6)


# The use case on fakes: a model placed on its (expensive) preferred type moves to the cheaper one.


@pytest.fixture
def fleet():
    config = fleet_from_mapping({
        "gpu_types": {
            "a100_80gb": {"memory_gb": 80, "on_demand_per_hour": 4.0, "relative_speed": 0.6},
            "h100_80gb": {"memory_gb": 80, "on_demand_per_hour": 8.0, "relative_speed": 1.0},
        },
        "regions": {REGION: 1.0},
        "pools": {REGION: {"a100_80gb": [4, 4, 0], "h100_80gb": [4, 4, 0]}},
        "models": {"echo-m": {"min_memory_gb": 1, "preferred_gpu": "h100_80gb", "instances_per_gpu": 4,
                              "triton_model": "echo"}},
    })  # fmt: skip
    uow = FakeUnitOfWork(seeded(config))
    counter = itertools.count()
    allocator = Allocator(
        settings=AllocatorSettings(server_prefix="t", max_servers=3),
        sessions=async_sessionmaker(),
        fleet=config,
        provisioner=FakeProvisioner(repository={"echo"}),
        relay=FakeRelay(),
        metrics=AllocatorMetrics(new_registry()),
        new_suffix=lambda: f"{next(counter):02d}",
        unit_of_work=uow,
    )
    return allocator, uow


async def run_actions(allocator: Allocator) -> None:
    while True:
        async with allocator.units.transaction() as repo:
            claimed = await repo.claim_action("w", 60, 3)
        if claimed is None:
            return
        await provisioning.carry_out_leased(allocator, "w", claimed.action_id)


async def test_a_move_starts_the_cheaper_server_first_then_stops_the_old_one(fleet):
    allocator, uow = fleet
    up = ScalingActionRequested(
        source="test", action_id="up-1", model_id="echo-m", region=REGION, kind=ActionKind.SCALE_UP,
        current_instances=0, target_instances=2, reason="unit test",
    )  # fmt: skip
    assert await planning.plan_action(allocator, "c", up)
    await run_actions(allocator)
    assert uow.state.servers["t-r1-00"]["gpu_type"] == "h100_80gb"  # the preferred type, $8/h

    (move,) = await replanning.replan_once(allocator)
    assert (move.to_gpu_type, move.saving_per_hour) == ("a100_80gb", 4.0)
    (moved,) = [e for e in uow.events if isinstance(e, InstancesMoved)]
    # The A100 serves 0.6 of an H100: 4 instances (one A100) replace 2, so nothing is served less.
    assert (moved.from_server, moved.saving_per_hour, moved.instances) == ("t-r1-00", 4.0, 4)
    assert uow.state.servers["t-r1-00"]["state"] == "draining"  # still serving: nothing breaks yet
    assert await replanning.replan_once(allocator) == []  # a draining server is not moved twice

    await run_actions(allocator)
    new = moved.to_server
    assert uow.state.servers[new]["state"] == "running" and uow.state.servers[new]["gpu_type"] == "a100_80gb"
    assert uow.state.placements[(new, "echo-m")]["instances"] == 4
    await Reconciler(allocator).reconcile()
    assert uow.state.servers["t-r1-00"]["state"] == "failed" and "moved" in uow.state.servers["t-r1-00"]["reason"]
    assert [e.repair for e in uow.events if isinstance(e, FleetRepaired)] == ["moved"]
    async with uow.transaction() as repo:
        assert conservation_violations(await repo.pool_accounts()) == []
    assert await replanning.replan_once(allocator) == []  # already optimal


async def test_a_move_that_fails_leaves_the_old_server_serving(fleet):
    allocator, uow = fleet
    up = ScalingActionRequested(
        source="test", action_id="up-1", model_id="echo-m", region=REGION, kind=ActionKind.SCALE_UP,
        current_instances=0, target_instances=2, reason="unit test",
    )  # fmt: skip
    assert await planning.plan_action(allocator, "c", up)
    await run_actions(allocator)
    assert await replanning.replan_once(allocator)
    allocator.provisioner.start_raises = RuntimeError("no a100 today")
    await run_actions(allocator)
    await Reconciler(allocator).reconcile()
    assert uow.state.servers["t-r1-00"]["state"] == "running"
    assert "move_abandoned" in [e.repair for e in uow.events if isinstance(e, FleetRepaired)]
    assert uow.state.pools[(REGION, "a100_80gb")].available == 4  # the new server's GPUs came back
