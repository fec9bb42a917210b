"""Capacity changes: the pure rules (domain/capacity.py) and the use case on the in-memory fakes."""

from __future__ import annotations

import itertools
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import async_sessionmaker

from services.allocator.adapters.metrics import AllocatorMetrics
from services.allocator.domain.capacity import (
    GpuOnRecord,
    classes_after,
    gpus_by_class,
    new_gpu_ids,
    plan_capacity_change,
    server_class,
)
from services.allocator.domain.fleet import FleetConfig, fleet_from_mapping
from services.allocator.domain.reconciliation import conservation_violations
from services.allocator.settings import AllocatorSettings
from services.allocator.use_cases import capacity, planning, provisioning
from services.allocator.use_cases.allocator import Allocator
from shared.events import ActionKind, CapacityChanged, CapacityChangeRequested, ScalingActionRequested
from shared.metrics import new_registry
from tests.unit.allocator.fakes import FakeProvisioner, FakeRelay, FakeRepository, FakeUnitOfWork, seeded

CLASSES = ("on_demand", "spot", "reserved")


def gpu(n: int, state: str = "free", cls: str = "on_demand", server: str | None = None) -> GpuOnRecord:
    return GpuOnRecord(f"g{n:02d}", state, cls, server)


# --- the rules -----------------------------------------------------------------------------------


def test_a_commitment_covers_whole_running_servers_first_then_free_gpus():
    gpus = [gpu(0, "allocated", server="a"), gpu(1, "allocated", server="a"), gpu(2, "allocated", server="b")]
    gpus += [gpu(n) for n in range(3, 8)]
    plan = plan_capacity_change(gpus, {"on_demand": -4, "reserved": 4}, {"a", "b"})
    assert plan.refused is None
    assert plan.repriced == {"a": "reserved", "b": "reserved"}  # 2 + 1 GPUs of whole servers
    assert sorted(plan.convert) == ["g00", "g01", "g02", "g03"]  # and one free GPU for the next server
    assert set(plan.convert.values()) == {"reserved"}
    assert classes_after(gpus, plan) == {"on_demand": 4, "spot": 0, "reserved": 4}


def test_a_server_too_big_for_the_commitment_is_left_as_it_is():
    gpus = [gpu(n, "allocated", server="big") for n in range(4)] + [gpu(n) for n in range(4, 7)]
    plan = plan_capacity_change(gpus, {"on_demand": -2, "reserved": 2}, {"big"})
    assert plan.repriced == {} and sorted(plan.convert) == ["g04", "g05"]


def test_spot_takes_free_gpus_only_a_running_server_keeps_its_class():
    gpus = [gpu(0, "allocated", server="a"), gpu(1), gpu(2)]
    plan = plan_capacity_change(gpus, {"on_demand": -2, "spot": 2}, {"a"})
    assert plan.convert == {"g01": "spot", "g02": "spot"} and plan.repriced == {}
    refused = plan_capacity_change(gpus, {"on_demand": -3, "spot": 3}, {"a"})
    assert refused.refused is not None and "a running server keeps its class" in refused.refused
    assert refused.convert == {}


def test_releasing_more_on_demand_gpus_than_are_free_is_refused_with_the_reason():
    gpus = [gpu(0, "allocated", server="a"), gpu(1), gpu(2, "reserved")]  # g02 is held back
    plan = plan_capacity_change(gpus, {"on_demand": -2}, {"a"})
    assert plan.refused == (
        "releasing 2 on_demand GPUs: only 1 are free; GPUs a running server holds are never released"
    )
    ok = plan_capacity_change(gpus, {"on_demand": -1}, {"a"})
    assert ok.release == ("g01",) and ok.changes == {"on_demand": -1}


def test_a_gpu_of_a_server_no_longer_live_is_not_taken_for_a_commitment():
    gpus = [gpu(0, "allocated", server="gone")]
    assert plan_capacity_change(gpus, {"on_demand": -1, "reserved": 1}, set()).refused is not None


def test_reserved_gpus_are_never_given_up_and_unknown_classes_are_refused():
    gpus = [gpu(0, cls="reserved")]
    assert "commitment runs its term" in str(plan_capacity_change(gpus, {"reserved": -1}, set()).refused)
    assert "unknown pricing class" in str(plan_capacity_change(gpus, {"preemptible": 1}, set()).refused)
    assert plan_capacity_change(gpus, {}, set()).refused == "nothing to change"


def test_a_mix_converts_what_it_can_releases_the_rest_and_buys_what_is_left():
    gpus = [gpu(n) for n in range(5)]
    plan = plan_capacity_change(gpus, {"on_demand": -5, "reserved": 2, "spot": 1}, set())
    assert sorted(plan.convert.values()) == ["reserved", "reserved", "spot"] and len(plan.release) == 2
    bought = plan_capacity_change(gpus, {"spot": 3}, set())
    assert bought.buy == {"spot": 3} and classes_after(gpus, bought) == {"on_demand": 5, "spot": 3, "reserved": 0}


def test_bought_gpu_ids_are_the_same_for_the_same_request_and_unique_within_it():
    ids = new_gpu_ids("r", "a100", "req-1", {"spot": 2, "reserved": 1})
    assert ids == new_gpu_ids("r", "a100", "req-1", {"spot": 2, "reserved": 1})
    flat = [i for group in ids.values() for i in group]
    assert len(set(flat)) == 3 and not set(flat) & {
        i for g in new_gpu_ids("r", "a100", "req-2", {"spot": 3}).values() for i in g
    }


def test_a_new_server_is_announced_as_the_class_of_most_of_its_gpus():
    assert server_class({"spot": 2, "on_demand": 1}) == "spot"
    assert server_class({"reserved": 1, "on_demand": 1}) == "reserved"
    assert server_class({"on_demand": 3}) == "on_demand"


@st.composite
def pools_and_requests(draw):
    gpus = []
    for n in range(draw(st.integers(0, 14))):
        state = draw(st.sampled_from(["free", "free", "allocated", "reserved"]))
        server = draw(st.sampled_from(["s1", "s2", "s3"])) if state == "allocated" else None
        gpus.append(gpu(n, state, draw(st.sampled_from(CLASSES)), server))
    changes = {c: draw(st.integers(-6, 6)) for c in draw(st.sets(st.sampled_from(CLASSES)))}
    live = draw(st.sets(st.sampled_from(["s1", "s2", "s3"])))
    return gpus, changes, live


@settings(max_examples=300, deadline=None)
@given(pools_and_requests())
def test_a_plan_changes_exactly_what_was_asked_and_never_touches_held_gpus(case):
    gpus, changes, live = case
    plan = plan_capacity_change(gpus, changes, live)
    if not plan.applied:
        assert plan.convert == {} and plan.release == () and plan.buy == {}
        return
    by_id = {g.gpu_id: g for g in gpus}
    before, after = gpus_by_class(gpus), classes_after(gpus, plan)
    assert {c: after[c] - before[c] for c in CLASSES if after[c] != before[c]} == {
        c: n for c, n in changes.items() if n
    }
    assert all(by_id[i].state == "free" for i in plan.release)  # never a server's, never one held back
    assert not set(plan.release) & set(plan.convert)
    for gpu_id, target in plan.convert.items():
        g = by_id[gpu_id]
        assert g.state != "reserved" and g.pricing_class != target
        assert g.state == "free" or (target == "reserved" and g.server_id in live and plan.repriced[g.server_id])
    for server_id in plan.repriced:  # whole servers only
        assert all(i in plan.convert for i, g in by_id.items() if g.server_id == server_id)
    assert all(g.pricing_class != "reserved" for g in by_id.values() if g.gpu_id in plan.release)


# --- the use case --------------------------------------------------------------------------------

REGION = "test-1"
POOL = (REGION, "a100_80gb")
CONSUMER = "allocator.on_scaling_action_requested"


@pytest.fixture
def fleet() -> FleetConfig:
    return fleet_from_mapping({
        "gpu_types": {"a100_80gb": {"memory_gb": 80, "on_demand_per_hour": 4.10, "relative_speed": 0.6}},
        "regions": {REGION: 1.0},
        "pools": {REGION: {"a100_80gb": [6, 5, 1]}},
        "models": {
            "echo-m": {"min_memory_gb": 1, "preferred_gpu": "a100_80gb", "instances_per_gpu": 4,
                       "triton_model": "echo"},
            "echo-n": {"min_memory_gb": 1, "preferred_gpu": "a100_80gb", "instances_per_gpu": 4,
                       "triton_model": "echo"},
        },
    })  # fmt: skip


@pytest.fixture
def uow(fleet: FleetConfig) -> FakeUnitOfWork:
    return FakeUnitOfWork(seeded(fleet))


@pytest.fixture
def allocator(fleet: FleetConfig, uow: FakeUnitOfWork) -> Allocator:
    counter = itertools.count()
    return Allocator(
        settings=AllocatorSettings(server_prefix="t", max_servers=4),
        sessions=async_sessionmaker(),
        fleet=fleet,
        provisioner=FakeProvisioner(repository={"echo"}),
        relay=FakeRelay(),
        metrics=AllocatorMetrics(new_registry()),
        new_suffix=lambda: f"{next(counter):02d}",
        unit_of_work=uow,
    )


async def start(allocator: Allocator, model: str) -> str:
    """A running one-GPU server holding the model; its id."""
    event = ScalingActionRequested(
        source="test", action_id=f"act-{uuid.uuid4().hex[:8]}", model_id=model, region=REGION,
        kind=ActionKind.SCALE_UP, current_instances=0, target_instances=1, reason="unit test",
    )  # fmt: skip
    assert await planning.plan_action(allocator, CONSUMER, event)
    await provisioning.carry_out(allocator, event.action_id)
    servers = [s for s, row in allocator.units.state.servers.items() if row["action_id"] == event.action_id]  # type: ignore[attr-defined]
    return servers[0]


def request(changes: dict, request_id: str = "req-1", months: int | None = None) -> CapacityChangeRequested:
    return CapacityChangeRequested(
        source="cost", request_id=request_id, recommendation_id="reserved-abc", region=REGION, gpu_type="a100_80gb",
        changes=changes, commitment_months=months, reason="operator applied cost recommendation reserved-abc",
    )  # fmt: skip


async def books_balance(uow: FakeUnitOfWork) -> list[str]:
    """The reconciler's check: free + reserved + allocated == total, by rows and by counters."""
    return conservation_violations(await FakeRepository(uow.state).pool_accounts())


def announced(uow: FakeUnitOfWork) -> list[CapacityChanged]:
    return [e for e in uow.events if isinstance(e, CapacityChanged)]


async def test_a_commitment_reprices_the_running_servers_it_covers_and_is_announced(allocator, uow):
    first, second = await start(allocator, "echo-m"), await start(allocator, "echo-n")
    assert uow.state.servers[first]["pricing_class"] == "on_demand"
    changed = await capacity.change_capacity(allocator, CONSUMER, request({"on_demand": -3, "reserved": 3}, months=12))
    assert changed is not None and changed.result == "applied" and changed.reason is None
    reserved_price = allocator.fleet.price(REGION, "a100_80gb", "reserved")  # type: ignore[arg-type]
    for server in (first, second):
        assert uow.state.servers[server]["pricing_class"] == "reserved"
        assert uow.state.servers[server]["cost_per_hour"] == pytest.approx(reserved_price)
    assert {r.server_id for r in changed.repriced} == {first, second}
    assert changed.gpus_by_class == {"on_demand": 2, "spot": 0, "reserved": 3}  # 5 usable GPUs, 1 held back
    assert changed.changes == {"on_demand": -3, "reserved": 3} and changed.commitment_months == 12
    assert announced(uow) == [changed]
    audit = uow.state.capacity_changes["req-1"]
    assert audit["result"] == "applied" and audit["applied"]["converted"] == {"on_demand->reserved": 3}
    assert audit["applied"]["repriced"] == {first: "reserved", second: "reserved"}
    assert await books_balance(uow) == []
    assert allocator.relay.rounds >= 1  # type: ignore[attr-defined]  # published after the commit


async def test_a_request_is_applied_once_by_event_and_by_request_id(allocator, uow):
    event = request({"on_demand": -2, "spot": 2})
    assert await capacity.change_capacity(allocator, CONSUMER, event) is not None
    classes = {gid: g["pricing_class"] for gid, g in uow.state.gpus.items()}
    assert await capacity.change_capacity(allocator, CONSUMER, event) is None  # redelivered
    resent = event.model_copy(update={"event_id": uuid.uuid4()})  # the cost service sent it again
    assert await capacity.change_capacity(allocator, CONSUMER, resent) is None
    assert {gid: g["pricing_class"] for gid, g in uow.state.gpus.items()} == classes
    assert len(announced(uow)) == 1 and len(uow.state.capacity_changes) == 1


async def test_servers_started_after_a_spot_change_take_spot_gpus_and_are_priced_spot(allocator, uow):
    await capacity.change_capacity(allocator, CONSUMER, request({"on_demand": -1, "spot": 1}))
    server = await start(allocator, "echo-m")
    assert uow.state.servers[server]["pricing_class"] == "spot"
    spot_price = allocator.fleet.price(REGION, "a100_80gb", "spot")  # type: ignore[arg-type]
    assert uow.state.servers[server]["cost_per_hour"] == pytest.approx(spot_price)
    held = [g for g in uow.state.gpus.values() if g["server_id"] == server]
    assert [g["pricing_class"] for g in held] == ["spot"]
    other = await start(allocator, "echo-n")  # no spot GPU left: on-demand again
    assert uow.state.servers[other]["pricing_class"] == "on_demand"


async def test_releasing_more_than_is_free_is_refused_audited_and_announced_and_changes_nothing(allocator, uow):
    server = await start(allocator, "echo-m")
    pools_before, gpus_before = dict(uow.state.pools), {k: dict(v) for k, v in uow.state.gpus.items()}
    changed = await capacity.change_capacity(allocator, CONSUMER, request({"on_demand": -5}, "req-big"))
    assert changed is not None and changed.result == "refused"
    assert changed.reason == (
        "releasing 5 on_demand GPUs: only 4 are free; GPUs a running server holds are never released"
    )
    assert uow.state.pools == pools_before and uow.state.gpus == gpus_before
    assert uow.state.servers[server]["state"] == "running"
    assert uow.state.capacity_changes["req-big"]["result"] == "refused"
    assert uow.state.capacity_changes["req-big"]["reason"] == changed.reason
    assert changed.gpus_by_class == {"on_demand": 5, "spot": 0, "reserved": 0} and changed.changes == {}


async def test_a_release_takes_free_gpus_out_of_the_pool_and_the_books_still_balance(allocator, uow):
    await start(allocator, "echo-m")
    changed = await capacity.change_capacity(allocator, CONSUMER, request({"on_demand": -3}, "req-rel"))
    assert changed is not None and changed.result == "applied"
    pool = uow.state.pools[POOL]
    assert (pool.total, pool.available, pool.reserved, pool.allocated) == (3, 1, 1, 1)
    assert await books_balance(uow) == []
    bought = await capacity.change_capacity(allocator, CONSUMER, request({"reserved": 2}, "req-buy"))
    assert bought is not None and bought.result == "applied"
    assert (uow.state.pools[POOL].total, uow.state.pools[POOL].available) == (5, 3)
    assert await books_balance(uow) == []


async def test_a_request_for_a_pool_that_does_not_exist_is_refused(allocator, uow):
    event = request({"spot": 1}).model_copy(update={"gpu_type": "h100_80gb"})
    changed = await capacity.change_capacity(allocator, CONSUMER, event)
    assert changed is not None and changed.result == "refused" and "no GPU pool" in str(changed.reason)
