"""The control path on in-memory fakes: the provisioning worker's queue and the reconciler's repairs.

Every test starts from the same small fleet as `test_use_cases` (one pool of 4 A100s: 3 free, 1
reserved) and checks the books balance at the end.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import async_sessionmaker

from services.allocator.adapters.metrics import AllocatorMetrics
from services.allocator.domain.fleet import FleetConfig, fleet_from_mapping
from services.allocator.domain.reconciliation import conservation_violations
from services.allocator.settings import AllocatorSettings
from services.allocator.use_cases import planning, provisioning
from services.allocator.use_cases.allocator import Allocator
from services.allocator.use_cases.reconciling import Reconciler
from shared.events import ActionKind, AlertState, FleetRepaired, ScalingActionRequested
from shared.metrics import new_registry
from tests.unit.allocator.fakes import FakeProvisioner, FakeRelay, FakeUnitOfWork, seeded

REGION = "test-1"
POOL = (REGION, "a100_80gb")
CONSUMER = "allocator.on_scaling_action_requested"
OWNER = "worker-1"


def small_fleet() -> FleetConfig:
    return fleet_from_mapping({
        "gpu_types": {"a100_80gb": {"memory_gb": 80, "on_demand_per_hour": 4.10, "relative_speed": 0.6}},
        "regions": {REGION: 1.0},
        "pools": {REGION: {"a100_80gb": [4, 3, 1]}},
        "models": {
            "echo-m": {"min_memory_gb": 1, "preferred_gpu": "a100_80gb", "instances_per_gpu": 4,
                       "triton_model": "echo"},
            "big-m": {"min_memory_gb": 70, "preferred_gpu": "a100_80gb", "triton_model": "echo"},
        },
    })  # fmt: skip


def make_allocator(**overrides: object) -> tuple[Allocator, FakeUnitOfWork]:
    fleet = small_fleet()
    uow = FakeUnitOfWork(seeded(fleet))
    counter = itertools.count()
    values: dict[str, object] = {"server_prefix": "t", "max_servers": 3, "dead_after_s": 30, "orphan_grace_s": 60}
    allocator = Allocator(
        settings=AllocatorSettings(**(values | overrides)),  # type: ignore[arg-type]
        sessions=async_sessionmaker(),  # never opened: the fake unit of work stands in for Postgres
        fleet=fleet,
        provisioner=FakeProvisioner(repository={"echo"}),
        relay=FakeRelay(),
        metrics=AllocatorMetrics(new_registry()),
        new_suffix=lambda: f"{next(counter):02d}",
        unit_of_work=uow,
    )
    return allocator, uow


@pytest.fixture
def fleet() -> tuple[Allocator, FakeUnitOfWork]:
    return make_allocator()


def action(model_id: str, kind: ActionKind, target: int, priority: str = "medium") -> ScalingActionRequested:
    return ScalingActionRequested(
        source="test", action_id=f"act-{uuid.uuid4().hex[:8]}", model_id=model_id, region=REGION, kind=kind,
        current_instances=0, target_instances=target, reason="unit test", priority=priority,  # type: ignore[arg-type]
    )  # fmt: skip


async def claim_and_carry_out(allocator: Allocator) -> str | None:
    """One round of the worker: take the next action and carry it out under its lease."""
    async with allocator.units.transaction() as repo:
        claimed = await repo.claim_action(OWNER, 60, allocator.settings.max_action_attempts)
    if claimed is None:
        return None
    await provisioning.carry_out_leased(allocator, OWNER, claimed.action_id)
    return claimed.action_id


async def balanced(uow: FakeUnitOfWork) -> list[str]:
    async with uow.transaction() as repo:
        return conservation_violations(await repo.pool_accounts())


def repairs(uow: FakeUnitOfWork) -> list[str]:
    return [e.repair for e in uow.events if isinstance(e, FleetRepaired)]


def server_state(uow: FakeUnitOfWork, server_id: str) -> str:
    return str(uow.state.servers[server_id]["state"])


# The worker's queue


async def test_the_worker_serves_actions_by_priority_then_age(fleet):
    allocator, uow = fleet
    low, first_medium, high, second_medium = (
        action("echo-m", ActionKind.SCALE_UP, 1, "low"),
        action("echo-m", ActionKind.SCALE_UP, 1),
        action("echo-m", ActionKind.SCALE_UP, 1, "high"),
        action("echo-m", ActionKind.SCALE_UP, 1),
    )
    for event in (low, first_medium, high, second_medium):
        async with uow.transaction() as repo:
            assert await repo.record_action(event)
    order = [await claim_and_carry_out(allocator) for _ in range(4)]
    assert order == [high.action_id, first_medium.action_id, second_medium.action_id, low.action_id]


async def test_an_action_held_by_a_live_lease_is_not_taken_twice(fleet):
    allocator, uow = fleet
    up = action("echo-m", ActionKind.SCALE_UP, 1)
    assert await planning.plan_action(allocator, CONSUMER, up)
    async with uow.transaction() as repo:
        assert (await repo.claim_action("replica-a", 60, 3)) is not None
        assert (await repo.claim_action("replica-b", 60, 3)) is None  # the other replica finds nothing
    uow.state.advance(61)  # replica-a died: its lease ran out
    async with uow.transaction() as repo:
        taken = await repo.claim_action("replica-b", 60, 3)
    assert taken is not None and taken.action_id == up.action_id
    await provisioning.carry_out_leased(allocator, "replica-b", up.action_id)
    # Its planned server id was started once: a second owner carries on, it does not start another.
    assert allocator.provisioner.starts == {"t-test-1-00": 1}
    assert uow.state.actions[up.action_id]["owner"] is None  # the lease is given back when done


async def test_the_worker_wakes_on_a_planned_action_and_stops_when_told(fleet):
    allocator, uow = fleet
    stopping = asyncio.Event()
    worker = asyncio.create_task(provisioning.work(allocator, OWNER, stopping))
    up = action("echo-m", ActionKind.SCALE_UP, 1)
    assert await planning.plan_action(allocator, CONSUMER, up)
    allocator.work_ready.set()
    for _ in range(100):
        if uow.state.actions[up.action_id]["state"] == "done":
            break
        await asyncio.sleep(0.01)
    stopping.set()
    await asyncio.wait_for(worker, 5)
    assert uow.state.actions[up.action_id]["state"] == "done"


@pytest.mark.parametrize(
    "error",
    [ValueError("bad profile"), RuntimeError("pool provisioner broke"), OSError("launcher missing")],
    ids=lambda e: type(e).__name__,
)
async def test_any_provisioner_error_fails_the_start_and_gives_everything_back(fleet, error):
    allocator, uow = fleet
    allocator.provisioner.start_raises = error  # not a ProvisioningError: used to leave the action stuck
    up = action("echo-m", ActionKind.SCALE_UP, 1)
    assert await planning.plan_action(allocator, CONSUMER, up)
    await claim_and_carry_out(allocator)
    assert uow.state.actions[up.action_id]["state"] == "failed"
    assert server_state(uow, "t-test-1-00") == "failed" and not uow.state.placements
    assert uow.state.pools[POOL].available == 3 and await balanced(uow) == []
    assert str(error) in uow.state.actions[up.action_id]["reason"]


async def test_a_stop_that_fails_keeps_the_server_and_its_gpus_until_the_reconciler_stops_it(fleet):
    allocator, uow = fleet
    up, down = action("echo-m", ActionKind.SCALE_UP, 1), action("echo-m", ActionKind.UNLOAD, 0)
    for event in (up, down):
        assert await planning.plan_action(allocator, CONSUMER, event)
        if event is down:
            allocator.provisioner.refuse_stop.add("t-test-1-00")
        await claim_and_carry_out(allocator)
    # The database must not say "released" while the process runs on its GPUs.
    assert server_state(uow, "t-test-1-00") == "stopping" and uow.state.pools[POOL].available == 2
    assert uow.state.actions[down.action_id]["state"] == "failed"

    allocator.provisioner.refuse_stop.clear()
    await Reconciler(allocator).reconcile()
    assert server_state(uow, "t-test-1-00") == "failed" and uow.state.pools[POOL].available == 3
    assert "server_stopped" in repairs(uow) and "t-test-1-00" in allocator.provisioner.stopped
    assert await balanced(uow) == []


# The reconciler


async def running_echo(allocator: Allocator) -> str:
    up = action("echo-m", ActionKind.SCALE_UP, 2)
    assert await planning.plan_action(allocator, CONSUMER, up)
    await claim_and_carry_out(allocator)
    return up.action_id


async def test_a_killed_server_is_marked_gone_after_the_grace_and_its_instances_replaced(fleet):
    allocator, uow = fleet
    reconciler = Reconciler(allocator)
    await running_echo(allocator)
    allocator.provisioner.crash("t-test-1-00")

    await reconciler.reconcile()  # first seen not answering: the clock starts
    assert server_state(uow, "t-test-1-00") == "running" and repairs(uow) == []
    uow.state.advance(31)
    await reconciler.reconcile()
    assert server_state(uow, "t-test-1-00") == "failed"
    assert "server_gone" in repairs(uow)
    assert "server_released" in [e.type for e in uow.events]

    replacement = await claim_and_carry_out(allocator)  # planned by the reconciler, high priority
    assert replacement is not None and replacement.startswith("replace-t-test-1-00-")
    assert uow.state.actions[replacement]["priority"] == 0
    assert server_state(uow, "t-test-1-01") == "running"
    assert uow.state.placements[("t-test-1-01", "echo-m")]["instances"] == 2
    assert await balanced(uow) == []


async def test_a_server_that_answers_again_in_time_is_kept(fleet):
    allocator, uow = fleet
    reconciler = Reconciler(allocator)
    await running_echo(allocator)
    endpoint = allocator.provisioner.running["t-test-1-00"]
    allocator.provisioner.crash("t-test-1-00")
    await reconciler.reconcile()
    assert uow.state.servers["t-test-1-00"]["unhealthy_since"] is not None
    allocator.provisioner.running["t-test-1-00"] = endpoint  # back (a slow restart, a network blip)
    allocator.provisioner.loaded[endpoint.endpoint] = {"echo"}
    uow.state.advance(31)
    await reconciler.reconcile()
    assert server_state(uow, "t-test-1-00") == "running"
    assert uow.state.servers["t-test-1-00"]["unhealthy_since"] is None and repairs(uow) == []


async def test_a_process_no_record_owns_is_stopped_after_the_grace_period(fleet):
    allocator, uow = fleet
    reconciler = Reconciler(allocator)
    await allocator.provisioner.start_server("t-test-1-stray", REGION, "a100_80gb", 1)
    await reconciler.reconcile()
    assert "t-test-1-stray" in allocator.provisioner.running  # not yet: it may be a start just committed
    uow.state.advance(61)
    await reconciler.reconcile()
    assert "t-test-1-stray" not in allocator.provisioner.running
    assert repairs(uow) == ["orphan_stopped"]


async def test_an_action_whose_worker_died_is_rolled_back_and_its_half_started_server_stopped(fleet):
    allocator, uow = fleet
    reconciler = Reconciler(allocator)
    up = action("echo-m", ActionKind.SCALE_UP, 1)
    assert await planning.plan_action(allocator, CONSUMER, up)
    async with uow.transaction() as repo:
        await repo.claim_action("dead-replica", 60, 3)
    # It got as far as spawning the process, then was SIGKILLed: row `starting`, process up.
    await allocator.provisioner.start_server("t-test-1-00", REGION, "a100_80gb", 1)

    await reconciler.reconcile()  # leased and young: left alone
    assert uow.state.actions[up.action_id]["state"] == "in_progress"
    uow.state.advance(allocator.settings.action_timeout_s + 1)
    await reconciler.reconcile()
    assert uow.state.actions[up.action_id]["state"] == "failed"
    assert "rolled back by the reconciler" in uow.state.actions[up.action_id]["reason"]
    assert server_state(uow, "t-test-1-00") == "failed" and "t-test-1-00" not in allocator.provisioner.running
    assert {"action_rolled_back", "server_stopped"} <= set(repairs(uow))
    assert "allocation_failed" in [e.type for e in uow.events]
    assert uow.state.pools[POOL].available == 3 and await balanced(uow) == []


async def test_placements_are_made_to_match_what_the_server_has_loaded(fleet):
    allocator, uow = fleet
    await running_echo(allocator)
    endpoint = allocator.provisioner.running["t-test-1-00"].endpoint
    allocator.provisioner.loaded[endpoint] = {"stray-model"}  # echo vanished, something else appeared
    await Reconciler(allocator).reconcile()
    assert allocator.provisioner.loaded[endpoint] == {"echo"}
    assert sorted(repairs(uow)) == ["model_unloaded", "placement_reloaded"]


async def test_gpus_held_by_a_server_that_is_not_live_go_back(fleet):
    allocator, uow = fleet
    await running_echo(allocator)
    uow.state.servers["t-test-1-00"]["state"] = "released"  # released, GPUs never returned (an old bug)
    allocator.provisioner.running.clear()
    await Reconciler(allocator).reconcile()
    assert uow.state.pools[POOL].available == 3 and "gpus_returned" in repairs(uow)
    assert await balanced(uow) == []


async def test_books_that_do_not_balance_fire_an_alert_once_and_resolve_it(fleet):
    allocator, uow = fleet
    reconciler = Reconciler(allocator)
    gpu_id = next(iter(uow.state.gpus))
    uow.state.gpus[gpu_id]["state"] = "lost"  # a row no state accounts for
    await reconciler.reconcile()
    await reconciler.reconcile()
    assert [a.state for a in uow.state.alerts] == [AlertState.FIRING]
    assert allocator.metrics.conservation_violations._value.get() > 0
    uow.state.gpus[gpu_id]["state"] = "free"
    await reconciler.reconcile()
    assert [a.state for a in uow.state.alerts] == [AlertState.FIRING, AlertState.RESOLVED]


async def test_a_server_someone_else_registered_is_retired_once_it_stops_answering(fleet, monkeypatch):
    from services.allocator.use_cases import reconciling, registrations
    from shared.events import ServerAllocated, ServerReleased

    allocator, uow = fleet
    answering = {"bench-1:8000": True, "bench-2:8000": False}

    async def answers(endpoint: str) -> bool:
        return answering[endpoint]

    monkeypatch.setattr(reconciling, "server_answers", answers)
    for n in (1, 2):
        announced = ServerAllocated(
            source="bench", server_id=f"bench-{n}", endpoint=f"bench-{n}:8000", metrics_url="", region=REGION,
            gpu_type="a100_80gb", cost_per_hour=1.0,
        )  # fmt: skip
        await registrations.record_registration(allocator, "allocator.on_server_registered", announced)
    ours = ServerAllocated(
        source="allocator", server_id="t-test-1-00", endpoint="x:1", metrics_url="", region=REGION,
        gpu_type="a100_80gb", cost_per_hour=1.0,
    )  # fmt: skip
    await registrations.record_registration(allocator, "allocator.on_server_registered", ours)
    assert set(uow.state.registered) == {"bench-1", "bench-2"}  # its own servers it knows from its tables

    reconciler = Reconciler(allocator)
    await reconciler.reconcile()  # bench-2's clock starts
    uow.state.advance(allocator.settings.retire_after_s + 1)
    await reconciler.reconcile()
    released = [e.server_id for e in uow.events if isinstance(e, ServerReleased)]
    assert released == ["bench-2"] and set(uow.state.registered) == {"bench-1"}
    assert repairs(uow) == ["server_retired"]

    gone = ServerReleased(source="bench", server_id="bench-1", region=REGION)
    await registrations.record_registration(allocator, "allocator.on_server_registered", gone)
    assert uow.state.registered == {}


# GPU conservation under any sequence of actions, failures and repairs

STEPS = st.lists(
    st.tuples(
        st.sampled_from(["up", "down", "unload", "crash", "refuse_stop", "allow_stop", "break_start", "reconcile"]),
        st.integers(min_value=0, max_value=6),
    ),
    max_size=12,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=STEPS)
def test_gpu_books_balance_after_every_step(steps):
    asyncio.run(_books_balance(steps))


async def _books_balance(steps: list[tuple[str, int]]) -> None:
    allocator, uow = make_allocator(dead_after_s=0, orphan_grace_s=0)
    provisioner, reconciler = allocator.provisioner, Reconciler(allocator)
    for what, n in steps:
        model = "big-m" if n % 2 else "echo-m"
        if what in ("up", "down", "unload"):
            kind = {"up": ActionKind.SCALE_UP, "down": ActionKind.SCALE_DOWN, "unload": ActionKind.UNLOAD}[what]
            if await planning.plan_action(allocator, CONSUMER, action(model, kind, n if what != "unload" else 0)):
                await claim_and_carry_out(allocator)
        elif what == "crash" and provisioner.running:
            provisioner.crash(sorted(provisioner.running)[n % len(provisioner.running)])
        elif what == "refuse_stop":
            provisioner.refuse_stop.update(provisioner.running)
        elif what == "allow_stop":
            provisioner.refuse_stop.clear()
        elif what == "break_start":
            provisioner.start_raises = None if provisioner.start_raises else RuntimeError("broken")
        elif what == "reconcile":
            await reconciler.reconcile()
        assert await balanced(uow) == [], (what, n)
        pool = uow.state.pools[POOL]
        held = sum(1 for g in uow.state.gpus.values() if g["server_id"] is not None)
        assert pool.total - pool.available - pool.reserved == held  # allocated GPUs are exactly the servers'
    # And once stops work again, the reconciler leaves no live row without a process, nor the reverse.
    provisioner.refuse_stop.clear()
    provisioner.start_raises = None
    for _ in range(3):
        uow.state.advance(1000)
        await reconciler.reconcile()
        while await claim_and_carry_out(allocator):
            pass
    live = {sid for sid, row in uow.state.servers.items() if row["state"] in ("starting", "running", "stopping")}
    assert live == set(provisioner.running)


# Spot reclaims: drain, replace, then stop (make before break)


def spot_allocator() -> tuple[Allocator, FakeUnitOfWork]:
    allocator, uow = make_allocator()
    key = POOL
    from dataclasses import replace as with_fields

    from services.allocator.domain.fleet import PricingClass

    uow.state.pools[key] = with_fields(uow.state.pools[key], pricing_class=PricingClass.SPOT)
    for g in uow.state.gpus.values():  # a server is priced by the class of the GPUs it takes
        g["pricing_class"] = "spot"
    return allocator, uow


async def test_a_spot_notice_drains_the_server_replaces_it_then_stops_it_before_the_reclaim():
    from datetime import timedelta

    from shared.events import SpotInterruptionNotice

    allocator, uow = spot_allocator()
    await running_echo(allocator)
    assert uow.state.servers["t-test-1-00"]["pricing_class"] == "spot"
    notice = SpotInterruptionNotice(
        source="cloud", server_id="t-test-1-00", region=REGION, reclaim_at=uow.state.clock + timedelta(seconds=120)
    )
    from services.allocator.use_cases import spot

    assert await spot.on_notice(allocator, "allocator.on_allocation_event", notice)
    assert not await spot.on_notice(allocator, "allocator.on_allocation_event", notice)  # redelivered: nothing
    assert server_state(uow, "t-test-1-00") == "draining"
    assert allocator.work_ready.is_set()

    reconciler = Reconciler(allocator)
    await reconciler.reconcile()  # replacement not ready yet: the doomed server keeps serving in-flight work
    assert server_state(uow, "t-test-1-00") == "draining"
    replacement = await claim_and_carry_out(allocator)
    assert replacement == "replace-t-test-1-00-echo-m"
    assert server_state(uow, "t-test-1-01") == "running"
    assert uow.state.placements[("t-test-1-01", "echo-m")]["instances"] == 2  # what the drained server had

    await reconciler.reconcile()  # replaced: stopped now, well before the reclaim
    assert server_state(uow, "t-test-1-00") == "failed"
    assert "replaced before its spot reclaim" in uow.state.servers["t-test-1-00"]["reason"]
    assert "spot_reclaimed" in repairs(uow) and await balanced(uow) == []


async def test_a_spot_server_with_no_replacement_is_stopped_when_the_cloud_takes_it():
    from datetime import timedelta

    from services.allocator.use_cases import spot
    from shared.events import SpotInterruptionNotice

    allocator, uow = spot_allocator()
    await running_echo(allocator)
    allocator.provisioner.start_raises = RuntimeError("no capacity anywhere")
    notice = SpotInterruptionNotice(
        source="cloud", server_id="t-test-1-00", region=REGION, reclaim_at=uow.state.clock + timedelta(seconds=30)
    )
    assert await spot.on_notice(allocator, "allocator.on_allocation_event", notice)
    await claim_and_carry_out(allocator)  # the replacement fails
    reconciler = Reconciler(allocator)
    for attempt in (2, 3):  # each round tries again (the cluster autoscaler may have grown the pool since)
        await reconciler.reconcile()
        assert f"replace-t-test-1-00-echo-m~{attempt}" in uow.state.actions
        await claim_and_carry_out(allocator)  # fails again
    await reconciler.reconcile()
    assert not any("~4" in a for a in uow.state.actions)  # spot_replace_attempts (3) spent: no more
    assert server_state(uow, "t-test-1-00") == "draining"  # still serving what it can until the reclaim
    uow.state.advance(31)
    await reconciler.reconcile()
    assert (
        server_state(uow, "t-test-1-00") == "failed"
        and "spot reclaimed at" in uow.state.servers["t-test-1-00"]["reason"]
    )
    assert uow.state.pools[POOL].available == 3 and await balanced(uow) == []


async def test_the_local_spot_market_gives_notice_at_its_rate():
    from services.allocator.domain.reconciliation import spot_reclaims
    from services.allocator.use_cases import spot
    from shared.events import SpotInterruptionNotice

    assert spot_reclaims(["a", "b"], 0.0, 10, [0.0, 0.0]) == []  # rate 0: never
    assert spot_reclaims(["a", "b"], 360.0, 10, [0.5, 0.7]) == ["a"]  # 1 - e^-1 = 0.632
    allocator, uow = spot_allocator()
    await running_echo(allocator)
    taken = await spot.draw_reclaims(allocator, 0.5, 10, uniform=lambda: 0.0)
    assert taken == ["t-test-1-00"]
    (notice,) = [e for e in uow.events if isinstance(e, SpotInterruptionNotice)]
    assert (notice.reclaim_at - uow.state.clock).total_seconds() == allocator.settings.spot_notice_s
    assert await spot.draw_reclaims(allocator, 0.5, 10, uniform=lambda: 0.99) == []
