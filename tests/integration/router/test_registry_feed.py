"""The registry comes from the allocation topic: replayed at start, followed live, no database needed.

The allocation topic is shared by the whole test session, so each router here also replays
older tests' servers; those that no longer answer are merely unhealthy. Each test releases
its own servers at the end, so later replays drop them again.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.router.adapters.allocation_feed import Fed
from services.router.adapters.orm import server, server_model
from services.router.app import RouterRuntime, create_app
from services.router.hotpath.registry_feed import RegistryFollower
from services.router.settings import RouterSettings
from shared.db import create_engine, session_factory
from shared.events import ALLOCATIONS, Event, ModelLoaded, ServerAllocated, ServerReleased
from tests.integration.helpers import start_group_at_end, wait_for
from tests.integration.router.conftest import SERVERS, Topic, request, results_for, send

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

NO_DATABASE = "postgresql+asyncpg://router:x@127.0.0.1:1/nope"  # nothing listens on port 1


@contextlib.asynccontextmanager
async def router(settings: RouterSettings, failures: list[BaseException]) -> AsyncIterator[RouterRuntime]:
    """A router app for the block whose dying background tasks are recorded instead of ending pytest."""
    await start_group_at_end(settings.kafka_bootstrap, settings.group_id, settings.requests_topic)
    app, runtime = create_app(settings, on_task_failed=failures.append)
    await app.start()
    try:
        yield runtime
    finally:
        await app.stop()


def allocation(server_id: str, model: str, endpoint: str, name: str = "router-t1") -> list[Event]:
    """A server announced as the allocator would, serving `model` as Triton's echo."""
    region = SERVERS[name]
    allocated = ServerAllocated(
        source="test",
        server_id=server_id,
        endpoint=endpoint,
        metrics_url="http://unused/metrics",
        region=region,
        gpu_type="h100_80gb",
        cost_per_hour=1.5,
        capacity=4,
    )
    return [
        allocated,
        ModelLoaded(source="test", server_id=server_id, model_id=model, region=region, triton_model="echo"),
    ]


async def release(bootstrap: str, server_ids: list[str], key: str) -> None:
    """Take the test's servers out of every later replay (same key as their allocation: same partition, after it)."""
    events: list[Event] = [ServerReleased(source="test", server_id=s, region="us-east-1") for s in server_ids]
    await send(bootstrap, events, ALLOCATIONS.name, key=key)


def knows(runtime: RouterRuntime, server_id: str, model: str) -> bool:
    """True when the router's registry places `model` on `server_id`."""
    assert runtime.hot_path is not None
    registry = runtime.hot_path.core.dispatcher.registry
    return server_id in registry.servers and server_id in registry.by_model.get(model, set())


async def test_a_router_without_a_database_learns_servers_from_the_topic_and_serves(
    make_settings, router_tritons, kafka_bootstrap
):
    tag = uuid.uuid4().hex[:6]
    before, live = f"router-feed-{tag}-a", f"router-feed-{tag}-b"
    old_model, new_model = f"feed-old-{tag}", f"feed-new-{tag}"
    # Announced before the router starts: only the replay from the beginning can find it.
    await send(kafka_bootstrap, allocation(before, old_model, router_tritons["router-t1"]), ALLOCATIONS.name, key=tag)
    settings = make_settings(database_url=NO_DATABASE)
    failures: list[BaseException] = []
    try:
        async with Topic(kafka_bootstrap) as results, router(settings, failures) as runtime:
            assert knows(runtime, before, old_model)  # the start waited for the replay
            announced = allocation(live, new_model, router_tritons["router-t2"], "router-t2")
            await send(kafka_bootstrap, announced, ALLOCATIONS.name, key=tag)
            assert await wait_for(lambda: knows(runtime, live, new_model), timeout=10)
            asked: list[Event] = [
                request(old_model, f"{tag}-old", max_tokens=4),
                request(new_model, f"{tag}-new", max_tokens=4),
            ]
            await send(kafka_bootstrap, asked, settings.requests_topic)
            ids = {f"{tag}-old", f"{tag}-new"}
            values = await results.until(lambda vs: len(results_for(vs, ids)) >= 2, timeout=30)
            assert runtime.registry_follower is not None and runtime.registry_follower.persisted == 0
    finally:
        await release(kafka_bootstrap, [before, live], tag)
    served = {v["request_id"]: v for v in results_for(values, ids)}
    assert {i: (v["status"], v["server_id"]) for i, v in served.items()} == {
        f"{tag}-old": ("ok", before),
        f"{tag}-new": ("ok", live),
    }, [v["reason"] for v in served.values()]
    assert failures == []  # the database being down killed no task


async def test_two_routers_with_their_own_instance_ids_both_learn_a_server(
    make_settings, router_tritons, kafka_bootstrap
):
    tag = uuid.uuid4().hex[:6]
    server_id, model = f"router-feed-{tag}", f"feed-{tag}"
    first, second = make_settings(instance_id=f"{tag}-1"), make_settings(instance_id=f"{tag}-2")
    failures: list[BaseException] = []
    try:
        async with router(first, failures) as one, router(second, failures) as two:
            announced = allocation(server_id, model, router_tritons["router-t1"])
            await send(kafka_bootstrap, announced, ALLOCATIONS.name, key=tag)
            assert await wait_for(lambda: knows(one, server_id, model) and knows(two, server_id, model), timeout=10)

            async def persisted() -> bool:
                """The tables got the server (written behind, once, by either router)."""
                async with one.sessions() as session:
                    rows = (
                        await session.execute(select(server.c.endpoint).where(server.c.server_id == server_id))
                    ).all()
                    placed = (await session.execute(select(server_model).where(server_model.c.model_id == model))).all()
                return len(rows) == 1 and len(placed) == 1

            assert await wait_for(persisted, timeout=20)
    finally:
        await release(kafka_bootstrap, [server_id], tag)
    assert failures == []


class DownAtFirst:
    """A session factory whose first `outages` transactions fail as if PostgreSQL were down."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], outages: int) -> None:
        self.sessions, self.outages = sessions, outages

    def begin(self) -> Any:
        """A transaction, unless the database is still "down"."""
        if self.outages:
            self.outages -= 1
            raise ConnectionRefusedError(111, "Connect call failed (test)")
        return self.sessions.begin()


async def test_the_tables_catch_up_once_the_database_answers_again(make_settings, router_tritons, kafka_bootstrap):
    tag = uuid.uuid4().hex[:6]
    server_id, model = f"router-feed-{tag}", f"feed-{tag}"
    settings = make_settings()
    await send(kafka_bootstrap, allocation(server_id, model, router_tritons["router-t1"]), ALLOCATIONS.name, key=tag)
    engine = create_engine(settings.database_url, settings.db_schema)
    flaky = DownAtFirst(session_factory(engine), outages=3)
    applied: list[Fed] = []
    failures: list[BaseException] = []

    async def apply(fed: Fed) -> None:
        applied.append(fed)

    sessions = cast(async_sessionmaker[AsyncSession], flaky)
    follower = RegistryFollower(kafka_bootstrap, f"test-{tag}", apply, sessions, failures.append, backoff_max_s=0.2)
    await follower.start()
    try:
        assert await follower.wait_caught_up(10)
        mine = [f for f in applied if getattr(f.event, "server_id", None) == server_id]
        assert len(mine) == 2 and all(f.replayed for f in mine)  # in memory at once, database or not

        # The copy waited out the outages and then went past every replayed event (other routers
        # of the session share the tables, so the row itself may have come from any of them).
        assert await wait_for(lambda: flaky.outages == 0 and follower.persisted >= len(applied), timeout=20)
        async with flaky.sessions() as session:
            rows = (await session.execute(select(server.c.server_id).where(server.c.server_id == server_id))).all()
        assert len(rows) == 1
    finally:
        await follower.stop()
        await engine.dispose()
        await release(kafka_bootstrap, [server_id], tag)
    assert failures == []


def test_the_app_is_built_outside_an_event_loop_as_main_builds_it(make_settings):
    # `python -m services.router` calls create_app before asyncio.run: no Kafka client may be made there.
    _app, runtime = create_app(make_settings(database_url=NO_DATABASE))
    asyncio.run(runtime.close())
