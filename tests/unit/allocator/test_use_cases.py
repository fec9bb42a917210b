"""The allocator's use cases (plan an action, carry it out, record prices) on in-memory fakes."""

from __future__ import annotations

import itertools
import uuid

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker

from services.allocator.adapters.metrics import AllocatorMetrics
from services.allocator.domain.fleet import FleetConfig, fleet_from_mapping
from services.allocator.domain.planner import Emulation
from services.allocator.settings import AllocatorSettings
from services.allocator.use_cases import planning, prices, provisioning
from services.allocator.use_cases.allocator import Allocator
from shared.events import ActionKind, GpuPrice, PricesPublished, ScalingActionRequested
from shared.metrics import new_registry
from tests.unit.allocator.fakes import FakeProvisioner, FakeRelay, FakeUnitOfWork, seeded

REGION = "test-1"
POOL = (REGION, "a100_80gb")
CONSUMER = "allocator.on_scaling_action_requested"


@pytest.fixture
def small_fleet() -> FleetConfig:
    return fleet_from_mapping({
        "gpu_types": {"a100_80gb": {"memory_gb": 80, "on_demand_per_hour": 4.10, "relative_speed": 0.6}},
        "regions": {REGION: 1.0},
        "pools": {REGION: {"a100_80gb": [4, 3, 1]}},
        "models": {
            "echo-m": {"min_memory_gb": 1, "preferred_gpu": "a100_80gb", "instances_per_gpu": 4,
                       "triton_model": "echo"},
            "ghost-m": {"min_memory_gb": 1, "preferred_gpu": "a100_80gb", "triton_model": "no-such-model"},
            "code-m": {"preferred_gpu": "a100_80gb", "triton_model": "echo", "emulates": "llama-2-7b"},
        },
    })  # fmt: skip


@pytest.fixture
def uow(small_fleet: FleetConfig) -> FakeUnitOfWork:
    return FakeUnitOfWork(seeded(small_fleet))


@pytest.fixture
def allocator(small_fleet: FleetConfig, uow: FakeUnitOfWork) -> Allocator:
    counter = itertools.count()
    return Allocator(
        settings=AllocatorSettings(server_prefix="t", max_servers=2),
        sessions=async_sessionmaker(),  # never opened: the fake unit of work stands in for Postgres
        fleet=small_fleet,
        provisioner=FakeProvisioner(repository={"echo"}),
        relay=FakeRelay(),
        metrics=AllocatorMetrics(new_registry()),
        new_suffix=lambda: f"{next(counter):02d}",
        unit_of_work=uow,
    )


def action(model_id: str, kind: ActionKind, target: int, action_id: str | None = None) -> ScalingActionRequested:
    return ScalingActionRequested(
        source="test", action_id=action_id or f"act-{uuid.uuid4().hex[:8]}", model_id=model_id, region=REGION,
        kind=kind, current_instances=0, target_instances=target, reason="unit test",
    )  # fmt: skip


async def run(allocator: Allocator, event: ScalingActionRequested) -> bool:
    """What the handler does: plan, then carry out when there is work."""
    planned = await planning.plan_action(allocator, CONSUMER, event)
    if planned:
        await provisioning.carry_out(allocator, event.action_id)
    return planned


def types_of(uow: FakeUnitOfWork, action_id: str) -> list[str]:
    return [e.type for e in uow.events if getattr(e, "action_id", None) == action_id]


async def test_scale_up_starts_a_server_loads_the_model_and_announces_both(allocator, uow):
    up = action("echo-m", ActionKind.SCALE_UP, 2)
    assert await run(allocator, up)
    assert types_of(uow, up.action_id) == ["server_allocated", "model_loaded"]
    (server_id, row), = uow.state.servers.items()  # fmt: skip
    assert server_id == "t-test-1-00" and row["state"] == "running" and row["endpoint"] == "t-test-1-00:8000"
    assert uow.state.placements[(server_id, "echo-m")]["state"] == "ready"
    assert uow.state.actions[up.action_id]["state"] == "done"
    assert uow.state.pools[POOL].available == 2
    assert (server_id, "echo-m") in uow.state.plans
    assert allocator.relay.rounds == 2 and uow.metric_refreshes == 2  # after planning and after carrying out


async def test_a_redelivered_finished_action_changes_nothing(allocator, uow):
    up = action("echo-m", ActionKind.SCALE_UP, 2)
    await run(allocator, up)
    before = (len(uow.events), dict(uow.state.servers), uow.state.pools[POOL])
    assert not await run(allocator, up)
    assert not await run(allocator, up.model_copy(update={"event_id": uuid.uuid4()}))  # the scaler sent it again
    assert (len(uow.events), dict(uow.state.servers), uow.state.pools[POOL]) == before


async def test_an_action_cut_short_after_planning_is_carried_on_when_redelivered(allocator, uow):
    up = action("echo-m", ActionKind.PRELOAD, 1)
    assert await planning.plan_action(allocator, CONSUMER, up)  # then the process died
    assert [row["state"] for row in uow.state.servers.values()] == ["starting"]
    assert await run(allocator, up)  # redelivered: still in progress, so carried on
    assert [row["state"] for row in uow.state.servers.values()] == ["running"]
    assert uow.state.pools[POOL].available == 2  # the GPU taken at planning, not a second one


async def test_an_unknown_model_fails_with_the_reason_and_takes_nothing(allocator, uow):
    unknown = action("nobody", ActionKind.SCALE_UP, 1)
    assert not await run(allocator, unknown)
    (failed,) = uow.events
    assert failed.type == "allocation_failed" and "unknown model nobody" in failed.reason
    assert uow.state.actions[unknown.action_id]["state"] == "failed"
    assert uow.state.pools[POOL].available == 3 and not uow.state.servers


async def test_more_than_the_pool_holds_fails_and_takes_nothing(allocator, uow):
    too_many = action("echo-m", ActionKind.SCALE_UP, 100)
    assert not await run(allocator, too_many)
    assert "insufficient resources" in uow.events[0].reason
    assert uow.state.pools[POOL].available == 3 and not uow.state.servers


async def test_a_model_the_server_lacks_stops_the_server_and_gives_its_gpus_back(allocator, uow):
    ghost = action("ghost-m", ActionKind.SCALE_UP, 1)
    assert await planning.plan_action(allocator, CONSUMER, ghost)
    assert uow.state.pools[POOL].available == 2
    await provisioning.carry_out(allocator, ghost.action_id)
    assert types_of(uow, ghost.action_id) == ["allocation_failed"]
    assert "no-such-model is not in the repository" in uow.events[0].reason
    (row,) = uow.state.servers.values()
    assert row["state"] == "failed" and "no-such-model" in row["reason"]
    assert allocator.provisioner.stopped == ["t-test-1-00"]
    assert uow.state.pools[POOL].available == 3 and not uow.state.placements
    assert uow.state.actions[ghost.action_id]["state"] == "failed"


async def test_a_server_that_cannot_start_fails_the_action(allocator, uow):
    allocator.provisioner.broken_gpu_types.add("a100_80gb")
    up = action("echo-m", ActionKind.SCALE_UP, 1)
    await run(allocator, up)
    assert types_of(uow, up.action_id) == ["allocation_failed"]
    assert "no local emulation profile" in uow.events[0].reason
    assert uow.state.pools[POOL].available == 3


async def test_unload_stops_the_emptied_server_and_returns_its_gpus(allocator, uow):
    await run(allocator, action("echo-m", ActionKind.SCALE_UP, 2))
    down = action("echo-m", ActionKind.UNLOAD, 0)
    assert await run(allocator, down)
    assert types_of(uow, down.action_id) == ["model_unloaded", "server_released"]
    assert [row["state"] for row in uow.state.servers.values()] == ["released"]
    assert uow.state.pools[POOL].available == 3 and not uow.state.placements and not uow.state.plans
    assert allocator.provisioner.running == {}


async def test_scale_down_within_a_server_is_bookkeeping_announced_at_once(allocator, uow):
    await run(allocator, action("echo-m", ActionKind.SCALE_UP, 4))
    down = action("echo-m", ActionKind.SCALE_DOWN, 2)
    assert await planning.plan_action(allocator, CONSUMER, down)
    (loaded,) = [e for e in uow.events if getattr(e, "action_id", None) == down.action_id]
    assert (loaded.type, loaded.instances) == ("model_loaded", 2)
    assert [p["instances"] for p in uow.state.placements.values()] == [2]


async def test_already_at_the_target_confirms_where_the_model_runs(allocator, uow):
    await run(allocator, action("echo-m", ActionKind.SCALE_UP, 2))
    again = action("echo-m", ActionKind.SCALE_UP, 2)
    assert await run(allocator, again)
    (confirmed,) = [e for e in uow.events if getattr(e, "action_id", None) == again.action_id]
    assert (confirmed.type, confirmed.instances) == ("model_loaded", 2)
    assert len(uow.state.servers) == 1 and uow.state.actions[again.action_id]["state"] == "done"


async def test_published_prices_are_recorded_once_and_price_new_servers(allocator, uow):
    price = GpuPrice(region=REGION, gpu_type="a100_80gb", on_demand_per_hour=3.33, spot_per_hour=1, reserved_per_hour=2)
    published = PricesPublished(source="test", prices=[price])
    assert await prices.record_prices(allocator, "allocator.on_prices_published", published)
    assert not await prices.record_prices(allocator, "allocator.on_prices_published", published)
    await run(allocator, action("echo-m", ActionKind.SCALE_UP, 5))  # 4 per GPU: two GPUs on one server
    allocated = next(e for e in uow.events if e.type == "server_allocated")
    assert (allocated.gpu_count, allocated.cost_per_hour) == (2, pytest.approx(6.66))


async def test_a_failure_inside_planning_leaves_no_trace(allocator, uow, monkeypatch):
    async def broken(*args: object) -> None:
        raise ConnectionError("database went away")

    monkeypatch.setattr("tests.unit.allocator.fakes.FakeRepository.add_server", broken)
    with pytest.raises(ConnectionError):
        await planning.plan_action(allocator, CONSUMER, action("echo-m", ActionKind.SCALE_UP, 1))
    assert not uow.state.actions and not uow.state.inbox and not uow.events  # one transaction: all or nothing
    assert uow.state.pools[POOL].available == 3


async def test_a_server_for_a_known_model_size_is_told_to_emulate_it(allocator, uow):
    assert await run(allocator, action("code-m", ActionKind.PRELOAD, 1))
    assert await run(allocator, action("echo-m", ActionKind.PRELOAD, 1))
    # The first server is code-m's (llama-2-7b on one a100); echo-m is no model the performance model knows.
    assert list(allocator.provisioner.emulations.values()) == [Emulation("llama-2-7b", "fp16", 1), None]
