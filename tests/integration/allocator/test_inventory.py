"""The inventory on real PostgreSQL: the seed, and no over-allocation under concurrent requests."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from services.allocator.adapters import inventory
from services.allocator.adapters.orm import gpu, gpu_pool
from shared.db import create_engine, session_factory


async def test_seed_makes_pool_and_gpu_ids_of_the_config(test_fleet):
    engine = create_engine(test_fleet.settings.database_url, "allocator")
    async with session_factory(engine)() as session:
        pool = (await session.execute(select(gpu_pool).where(gpu_pool.c.region == test_fleet.region))).one()
        states = dict(
            (await session.execute(
                select(gpu.c.state, func.count()).where(gpu.c.region == test_fleet.region).group_by(gpu.c.state)
            )).all()
        )  # fmt: skip
    await engine.dispose()
    assert (pool.total, pool.available, pool.reserved) == (4, 3, 1)
    assert states == {"free": 3, "reserved": 1}


async def test_concurrent_allocations_never_take_more_than_is_free(test_fleet):
    engine = create_engine(test_fleet.settings.database_url, "allocator", pool_size=10)
    sessions = session_factory(engine)

    async def claim(n: int) -> bool:
        try:
            async with sessions.begin() as session:
                pools = await inventory.lock_region(session, test_fleet.region)
                assert pools[(test_fleet.region, "a100_80gb")].available >= 0
                await inventory.take_gpus(session, test_fleet.region, "a100_80gb", 1, f"claim-{test_fleet.region}-{n}")
                await asyncio.sleep(0.01)  # widen the window a race would need
            return True
        except inventory.InsufficientGpus:
            return False

    results = await asyncio.gather(*(claim(n) for n in range(10)))
    async with sessions() as session:
        pool = (await session.execute(select(gpu_pool).where(gpu_pool.c.region == test_fleet.region))).one()
        mine = (gpu.c.region == test_fleet.region) & (gpu.c.state == "allocated")
        owners = (await session.execute(select(gpu.c.server_id).where(mine))).scalars().all()
    assert sum(results) == 3 and pool.available == 0
    assert len(owners) == len(set(owners)) == 3  # every GPU to exactly one claimant

    # Even a writer that skips the lock and the conditional update cannot go below zero.
    with pytest.raises(IntegrityError, match="available_not_negative"):
        async with sessions.begin() as session:
            await session.execute(
                gpu_pool.update()
                .where(gpu_pool.c.region == test_fleet.region)
                .values(available=gpu_pool.c.available - 1)
            )
    async with sessions.begin() as session:
        assert await inventory.return_gpus(session, [f"claim-{test_fleet.region}-{n}" for n in range(10)]) == 3
        available = (
            await session.execute(select(gpu_pool.c.available).where(gpu_pool.c.region == test_fleet.region))
        ).scalar_one()
    assert available == 3
    await engine.dispose()


async def test_metrics_report_pools_and_servers_by_state(test_fleet):
    from prometheus_client import generate_latest

    from services.allocator.adapters.metrics import AllocatorMetrics
    from shared.metrics import new_registry

    engine = create_engine(test_fleet.settings.database_url, "allocator")
    metrics = AllocatorMetrics(new_registry())
    metrics.allocations.labels("failed").inc()
    await metrics.refresh(session_factory(engine))
    await engine.dispose()
    text = generate_latest(metrics.registry).decode()
    labels = f'gpu_type="a100_80gb",region="{test_fleet.region}"'
    assert f'llmfleet_allocator_gpus{{{labels},state="available"}} 3.0' in text
    assert f'llmfleet_allocator_gpus{{{labels},state="reserved"}} 1.0' in text
    assert 'llmfleet_allocator_allocations_total{result="failed"} 1.0' in text
    assert "llmfleet_allocator_servers" in text and "llmfleet_allocator_provision_seconds" in text


async def test_concurrent_scaling_actions_never_over_allocate(test_fleet):
    from services.allocator.adapters.orm import server
    from services.allocator.app import create_app
    from services.allocator.use_cases import planning
    from shared.events import ActionKind, ScalingActionRequested

    settings = test_fleet.settings.model_copy(update={"max_servers": 10, "db_pool_size": 8})
    _app, service = create_app(settings)
    runtime, allocator = service.runtime, service.allocator

    def action(n: int) -> ScalingActionRequested:
        return ScalingActionRequested(
            source="test", action_id=f"conc-{test_fleet.region}-{n}", model_id=test_fleet.echo,
            region=test_fleet.region, kind=ActionKind.SCALE_UP, current_instances=0,
            target_instances=4 * (n + 1), reason="concurrency",
        )  # fmt: skip

    # Planning only (no servers start). Targets of 16+ instances need 4+ GPUs of the 3 free.
    planned = await asyncio.gather(*(planning.plan_action(allocator, "test", action(n)) for n in range(6)))
    mine = gpu.c.region == test_fleet.region
    async with runtime.sessions() as session:
        pool = (await session.execute(select(gpu_pool).where(gpu_pool.c.region == test_fleet.region))).one()
        owned = (await session.execute(select(func.count()).where(mine, gpu.c.state == "allocated"))).scalar_one()
        in_servers = (
            await session.execute(
                select(func.coalesce(func.sum(server.c.gpu_count), 0)).where(server.c.region == test_fleet.region)
            )
        ).scalar_one()
    await runtime.close()
    assert pool.available >= 0 and pool.available + owned == 3  # counters and GPU rows agree
    assert in_servers == owned <= 3  # every allocated GPU belongs to exactly one server's count
    assert sum(planned) <= 3  # the three actions wanting more than the pool were refused


async def test_gpu_books_balance_after_any_sequence_of_takes_and_returns(test_fleet):
    """Property: whatever is taken, refused and given back, free + reserved + allocated == total, rows and counters."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from services.allocator.adapters import control
    from services.allocator.domain.reconciliation import conservation_violations

    region = test_fleet.region
    engine = create_engine(test_fleet.settings.database_url, "allocator", pool_size=2)
    sessions = session_factory(engine)
    operations = st.lists(
        st.tuples(st.sampled_from(["take", "return"]), st.integers(1, 4), st.integers(0, 3)), max_size=10
    )

    async def books() -> list[str]:
        async with sessions() as session:
            return [p for p in conservation_violations(await control.pool_accounts(session)) if region in p]

    async def run(steps: list[tuple[str, int, int]]) -> None:
        for what, count, owner in steps:
            server_id = f"prop-{region}-{owner}"
            try:
                async with sessions.begin() as session:
                    if what == "take":
                        await inventory.take_gpus(session, region, "a100_80gb", count, server_id)
                    else:
                        await inventory.return_gpus(session, [server_id])
            except inventory.InsufficientGpus:
                pass  # refused, never over-allocated: the books must still balance
            assert await books() == [], (what, count, owner)
        async with sessions.begin() as session:  # give everything back for the next example
            await inventory.return_gpus(session, [f"prop-{region}-{n}" for n in range(4)])

    loop = asyncio.get_running_loop()

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    @given(steps=operations)
    def property_holds(steps: list[tuple[str, int, int]]) -> None:
        asyncio.run_coroutine_threadsafe(run(steps), loop).result(timeout=60)

    try:
        await asyncio.to_thread(property_holds)
    finally:
        await engine.dispose()
