"""The pool provisioner on a real Triton server that it did not start (as under Compose)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from deploy.local import triton
from services.allocator.adapters.orm import pool_assignment
from services.allocator.adapters.pool_provisioner import PoolProvisioner
from services.allocator.adapters.provisioner import ProvisioningError
from services.allocator.app import migrate
from services.allocator.settings import AllocatorSettings, PoolServer
from shared.db import create_engine, session_factory

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def pool_server() -> Iterator[PoolServer]:
    name = f"allocator-pool-{uuid.uuid4().hex[:6]}"
    info = triton.start_server(name, triton.PROFILES["a100_80gb"], region="test-pool", base_port=8200)
    try:
        yield PoolServer(
            endpoint=info["http_url"], metrics_url=info["metrics_url"], region="test-pool", gpu_type="a100_80gb"
        )
    finally:
        triton.stop_server(name)


@pytest.fixture
async def sessions(database_url, pool_server: PoolServer) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """The allocator's schema, where the pool provisioner keeps its assignments."""
    settings = AllocatorSettings(database_url=database_url("allocator"))
    await asyncio.to_thread(migrate, settings)  # it runs its own event loop
    engine = create_engine(settings.database_url, settings.db_schema, pool_size=2)
    factory = session_factory(engine)
    yield factory
    async with factory.begin() as session:  # the test's pool server only: others may share the table
        await session.execute(delete(pool_assignment).where(pool_assignment.c.endpoint == pool_server.endpoint))
    await engine.dispose()


async def test_hands_out_an_idle_server_once_and_takes_it_back(pool_server: PoolServer, sessions) -> None:
    pool = PoolProvisioner([pool_server], sessions)
    with pytest.raises(ProvisioningError, match="no free server"):
        await pool.start_server("s-0", "test-pool", "h100_80gb", 1)  # no server of that type

    given = await pool.start_server("s-1", "test-pool", "a100_80gb", 1)
    assert given.endpoint == pool_server.endpoint
    assert (await pool.start_server("s-1", "test-pool", "a100_80gb", 1)) == given  # asked again: the same one
    await pool.load_model(given.endpoint, "echo")
    assert await pool.model_ready(given.endpoint, "echo")
    with pytest.raises(ProvisioningError, match="no free server"):
        await pool.start_server("s-2", "test-pool", "a100_80gb", 1)

    # A restarted allocator knows from the table what it handed out: not free, and it can give it back.
    restarted = PoolProvisioner([pool_server], sessions)
    with pytest.raises(ProvisioningError, match="no free server"):
        await restarted.start_server("s-3", "test-pool", "a100_80gb", 1)
    assert (await restarted.start_server("s-1", "test-pool", "a100_80gb", 1)) == given
    seen = await restarted.observe("s")
    assert seen["s-1"].ready and seen["s-1"].loaded == frozenset({"echo"})

    await restarted.stop_server("s-1")  # the first process's assignment, stopped by the restarted one
    assert not await pool.model_ready(pool_server.endpoint, "echo")
    assert (await restarted.start_server("s-3", "test-pool", "a100_80gb", 1)).endpoint == pool_server.endpoint


async def test_a_server_assigned_by_a_crashed_start_is_seen_and_can_be_given_back(pool_server, sessions) -> None:
    # The allocator assigned the server and loaded a model, then died before recording it running.
    crashed = PoolProvisioner([pool_server], sessions)
    given = await crashed.start_server("s-crash", "test-pool", "a100_80gb", 1)
    await crashed.load_model(given.endpoint, "echo")

    restarted = PoolProvisioner([pool_server], sessions)
    assert set(await restarted.observe("s")) == {"s-crash"}  # what the reconciler finds unowned
    with pytest.raises(ProvisioningError, match="no free server"):
        await restarted.start_server("s-next", "test-pool", "a100_80gb", 1)
    await restarted.stop_server("s-crash")
    assert await restarted.observe("s") == {}
    assert (await restarted.start_server("s-next", "test-pool", "a100_80gb", 1)).endpoint == pool_server.endpoint
