"""The cluster autoscaler: pools grow and shrink by the seed's rules through a capacity provider.

Pure rules first (`pool_change`), then the use case on the in-memory unit of work: a placement
that found no GPUs grows its pool, a long-idle pool gives back free GPUs only, and a reclaimed spot
server with no free GPU left is replaced on on-demand capacity the autoscaler bought.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from services.allocator.adapters.capacity_provider import EmulatedCapacityProvider
from services.allocator.domain.autoscaling import (
    AutoscalingRules,
    PoolAction,
    PoolDecision,
    PoolQuota,
    PoolReading,
    decide,
    pool_change,
)
from services.allocator.use_cases import planning, spot
from services.allocator.use_cases.allocator import Allocator
from services.allocator.use_cases.cluster import ClusterAutoscaler
from services.allocator.use_cases.reconciling import Reconciler
from shared.events import ActionKind, CapacityAdded, CapacityReleased, SpotInterruptionNotice
from tests.unit.allocator.fakes import FakeUnitOfWork
from tests.unit.allocator.test_control_path import (
    CONSUMER,
    POOL,
    REGION,
    action,
    balanced,
    claim_and_carry_out,
    make_allocator,
    running_echo,
    server_state,
    spot_allocator,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)
HOLD = PoolDecision(PoolAction.HOLD, 0, "within thresholds")


# The rules


def test_high_utilisation_grows_by_a_step_within_the_quota():
    reading = PoolReading(total=10, free=1)
    decision = decide(reading.utilisation, 0, reading.total, None, NOW)
    assert decision.action is PoolAction.SCALE_UP and decision.gpus == 2
    assert pool_change(decision, reading, PoolQuota(max_gpus=64)) == 2
    assert pool_change(decision, reading, PoolQuota(max_gpus=11)) == 1  # the quota caps it
    assert pool_change(decision, reading, PoolQuota(max_gpus=10)) == 0


def test_a_shortfall_grows_by_what_was_missed_even_when_utilisation_is_low():
    reading = PoolReading(total=10, free=8, shortfall=5)
    assert pool_change(HOLD, reading, PoolQuota()) == 5


def test_a_long_low_pool_releases_free_gpus_only_down_to_the_quota():
    rules = AutoscalingRules(down_after=timedelta(minutes=10))
    reading = PoolReading(total=10, free=1)  # 10% used, but only one GPU free
    low_since = NOW - timedelta(minutes=11)
    decision = decide(0.1, 0, 10, low_since, NOW, rules)
    assert decision.action is PoolAction.SCALE_DOWN
    assert pool_change(decision, reading, PoolQuota()) == -1
    assert pool_change(decision, PoolReading(total=10, free=9), PoolQuota(min_gpus=9)) == -1
    assert decide(0.1, 0, 10, NOW - timedelta(minutes=9), NOW, rules).action is PoolAction.HOLD  # not yet


@given(
    total=st.integers(0, 40),
    free=st.integers(0, 40),
    shortfall=st.integers(0, 20),
    utilisation=st.floats(0, 1),
    low_for_min=st.integers(0, 30),
    quota=st.tuples(st.integers(0, 20), st.integers(1, 60)),
)
def test_a_change_never_leaves_the_quota_nor_releases_a_held_gpu(
    total, free, shortfall, utilisation, low_for_min, quota
):
    free = min(free, total)
    reading = PoolReading(total=total, free=free, shortfall=shortfall)
    decision = decide(utilisation, 0, total, NOW - timedelta(minutes=low_for_min), NOW)
    change = pool_change(decision, reading, PoolQuota(*quota))
    assert -change <= free  # never a GPU someone holds
    if change > 0:
        assert total + change <= quota[1]
    if change < 0:
        assert total + change >= quota[0]


# The use case


def autoscaler(allocator: Allocator, delay_s: float = 0.0) -> ClusterAutoscaler:
    return ClusterAutoscaler(allocator, EmulatedCapacityProvider(delay_s), AutoscalingRules(), PoolQuota(max_gpus=16))


def events_of(uow: FakeUnitOfWork, kind: type) -> list:
    return [e for e in uow.events if isinstance(e, kind)]


async def test_a_placement_that_found_no_gpus_grows_its_pool_and_fits_when_asked_again():
    allocator, uow = make_allocator()
    too_many = action("echo-m", ActionKind.SCALE_UP, 20)  # 5 GPUs at 4 per GPU; the pool has 3 free
    assert not await planning.plan_action(allocator, CONSUMER, too_many)
    assert allocator.shortfalls == {POOL: 5}
    cluster = autoscaler(allocator)
    (added,) = await cluster.scale()
    assert isinstance(added, CapacityAdded) and added.gpus == 5 and added.pricing_class == "on_demand"
    assert uow.state.pools[POOL].total == 9 and uow.state.pools[POOL].available == 8
    assert allocator.shortfalls == {} and allocator.provisioner is not None
    assert events_of(uow, CapacityAdded) == [added] and await balanced(uow) == []
    assert await planning.plan_action(allocator, CONSUMER, action("echo-m", ActionKind.SCALE_UP, 20))
    assert await cluster.scale() == []  # nothing missed since, and 5 of 8 usable GPUs taken: hold


async def test_an_idle_pool_gives_back_free_gpus_and_never_one_a_server_holds():
    allocator, _ = make_allocator()
    await running_echo(allocator)  # 1 of the 3 usable GPUs held
    cluster = autoscaler(allocator)
    assert await cluster.scale() == []  # 33% used: neither up nor down
    allocator2, uow2 = make_allocator()
    await running_echo(allocator2)
    uow2.state.gpus.update(
        {f"{REGION}/a100_80gb/extra-{i}": {**next(iter(uow2.state.gpus.values())), "state": "free", "server_id": None}
         for i in range(6)}
    )  # fmt: skip
    from dataclasses import replace as with_fields

    pool = uow2.state.pools[POOL]
    uow2.state.pools[POOL] = with_fields(pool, total=pool.total + 6, available=pool.available + 6)
    cluster2 = autoscaler(allocator2)
    assert await cluster2.scale() == []  # 1 of 9 used: low, the clock starts
    uow2.state.advance(11 * 60)
    (released,) = await cluster2.scale()
    assert isinstance(released, CapacityReleased) and released.gpus == 2  # a step: 20% of 10, rounded up
    held = {g for g, row in uow2.state.gpus.items() if row["state"] == "allocated"}
    assert held and not held & set(released.gpu_ids)
    assert server_state(uow2, "t-test-1-00") == "running" and await balanced(uow2) == []
    assert await cluster2.scale() == []  # the low clock starts again after a release


async def test_a_reclaimed_spot_server_with_no_free_gpu_is_replaced_on_on_demand_capacity():
    allocator, uow = spot_allocator()
    await running_echo(allocator)  # t-test-1-00: 1 spot GPU
    big = action("big-m", ActionKind.SCALE_UP, 2)  # the 2 other usable GPUs
    assert await planning.plan_action(allocator, CONSUMER, big)
    await claim_and_carry_out(allocator)
    assert uow.state.pools[POOL].available == 0
    notice = SpotInterruptionNotice(
        source="cloud", server_id="t-test-1-00", region=REGION, reclaim_at=uow.state.clock + timedelta(seconds=120)
    )
    assert await spot.on_notice(allocator, "allocator.on_allocation_event", notice)
    assert allocator.shortfalls == {POOL: 1}  # the first attempt found no GPU
    (added,) = await autoscaler(allocator).scale()
    assert added.gpus == 1 and added.pricing_class == "on_demand"
    await Reconciler(allocator).reconcile()  # tries again: the pool has an on-demand GPU now
    assert await claim_and_carry_out(allocator) == "replace-t-test-1-00-echo-m~2"
    (replacement,) = [s for s, row in uow.state.servers.items() if row["action_id"] == "replace-t-test-1-00-echo-m~2"]
    assert server_state(uow, replacement) == "running"
    assert uow.state.servers[replacement]["pricing_class"] == "on_demand"
    await Reconciler(allocator).reconcile()  # replaced before the reclaim: the spot server stops
    assert server_state(uow, "t-test-1-00") == "failed" and await balanced(uow) == []


async def test_growth_waits_for_the_provider():
    delay_s = 0.05
    allocator, _ = make_allocator()
    allocator.shortfalls = {POOL: 1}
    provider = EmulatedCapacityProvider(delay_s)
    cluster = ClusterAutoscaler(allocator, provider, AutoscalingRules(), PoolQuota(max_gpus=16))
    (added,) = await cluster.scale()
    assert provider.acquired == [(REGION, "a100_80gb", 1)] and added.gpus == 1
