"""Retention against the real PostgreSQL: old rows go, recent and unstamped rows stay, only the leader prunes,
and each statement deletes a bounded batch. Runs on a table of its own, so other tests' rows are never touched."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Column, DateTime, Integer, Table, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.allocator import jobs as allocator_jobs
from services.allocator.settings import AllocatorSettings
from services.cost import jobs as cost_jobs
from services.cost.settings import CostSettings
from services.gateway import jobs as gateway_jobs
from services.gateway.settings import GatewaySettings
from services.monitor import jobs as monitor_jobs
from services.monitor.settings import MonitorSettings
from services.scaler import jobs as scaler_jobs
from services.scaler.settings import ScalerSettings
from shared.db import create_engine, service_metadata, session_factory
from shared.jobs import Jobs
from shared.leader import leading
from shared.retention import Kept, delete_batch, prune, prune_table, retention_job
from shared.settings import ServiceSettings

pytestmark = pytest.mark.integration
NOW = datetime.now(UTC)
KEEP_S = 3600.0
OLD, RECENT = NOW - timedelta(seconds=KEEP_S + 60), NOW - timedelta(seconds=60)
SERVICES: list[tuple[str, Any, Any]] = [
    ("allocator", AllocatorSettings, allocator_jobs.retained),
    ("scaler", ScalerSettings, scaler_jobs.retained),
    ("cost", CostSettings, cost_jobs.retained),
    ("monitor", MonitorSettings, monitor_jobs.retained),
    ("gateway", GatewaySettings, gateway_jobs.retained),
]


@pytest.fixture
async def scratch(database_url) -> AsyncIterator[tuple[async_sessionmaker[AsyncSession], Kept]]:
    """A throw-away table in the scaler's schema with a nullable timestamp, dropped afterwards."""
    engine = create_engine(database_url("scaler"), "scaler", pool_size=4)
    table = Table(
        f"retention_test_{uuid.uuid4().hex[:10]}",
        service_metadata("scaler"),
        Column("id", Integer, primary_key=True),
        Column("sent_at", DateTime(timezone=True)),
    )
    async with engine.begin() as connection:
        await connection.run_sync(table.create)
    try:
        yield session_factory(engine), Kept(table, "sent_at", KEEP_S)
    finally:
        async with engine.begin() as connection:
            await connection.run_sync(table.drop)
        await engine.dispose()


async def fill(sessions: async_sessionmaker[AsyncSession], kept: Kept, stamps: list[datetime | None]) -> None:
    async with sessions.begin() as session:
        await session.execute(kept.table.insert(), [{"id": i, "sent_at": at} for i, at in enumerate(stamps)])


async def left(sessions: async_sessionmaker[AsyncSession], kept: Kept) -> list[int]:
    async with sessions() as session:
        return list((await session.execute(select(kept.table.c.id).order_by(kept.table.c.id))).scalars())


def lock() -> str:
    return f"test.retention.{uuid.uuid4().hex}"  # runs sharing the database never contend


async def test_old_rows_go_recent_and_unstamped_rows_stay(scratch):
    sessions, kept = scratch
    await fill(sessions, kept, [OLD, RECENT, None, OLD, RECENT])
    assert await prune(sessions, lock(), [kept], NOW, batch_rows=10) == {kept.table.name: 2}
    assert await left(sessions, kept) == [1, 2, 4]
    assert await prune(sessions, lock(), [kept], NOW, batch_rows=10) == {kept.table.name: 0}


async def test_rows_that_do_not_meet_only_stay_however_old(scratch):
    # As the allocator keeps actions in progress and live servers: only finished history goes.
    sessions, kept = scratch
    await fill(sessions, kept, [OLD, OLD, OLD, RECENT])
    finished_only = Kept(kept.table, kept.column, kept.keep_s, only=kept.table.c.id != 1)
    assert await prune(sessions, lock(), [finished_only], NOW, batch_rows=10) == {kept.table.name: 2}
    assert await left(sessions, kept) == [1, 3]


async def test_only_the_leader_prunes(scratch):
    sessions, kept = scratch
    await fill(sessions, kept, [OLD, OLD, RECENT])
    name = lock()
    async with leading(sessions, name) as other_replica:
        assert other_replica
        assert await prune(sessions, name, [kept], NOW, batch_rows=10) is None
        assert await left(sessions, kept) == [0, 1, 2]
    assert await prune(sessions, name, [kept], NOW, batch_rows=10) == {kept.table.name: 2}


async def test_each_statement_deletes_a_bounded_batch_until_the_backlog_is_gone(scratch):
    sessions, kept = scratch
    await fill(sessions, kept, [OLD] * 25 + [RECENT])
    async with sessions.begin() as session:
        assert await delete_batch(session, kept, NOW - timedelta(seconds=KEEP_S), limit=10) == 10
    assert len(await left(sessions, kept)) == 16
    assert await prune_table(sessions, kept, NOW, batch_rows=10) == 15  # batches of 10, then 5
    assert await left(sessions, kept) == [25]


async def test_the_declared_job_prunes_on_its_schedule(scratch, database_url):
    sessions, kept = scratch
    await fill(sessions, kept, [OLD, RECENT])
    settings = ServiceSettings(
        service_name=f"test-{uuid.uuid4().hex[:8]}", database_url=database_url("scaler"), retention_batch_rows=1
    )
    background = Jobs()
    background.start(retention_job(sessions, settings, [kept], clock=lambda: NOW, immediately=True))
    try:
        for _ in range(100):
            if await left(sessions, kept) == [1]:
                break
            await asyncio.sleep(0.05)
    finally:
        await background.stop()
    assert await left(sessions, kept) == [1]


@pytest.mark.parametrize(("service", "settings_type", "retained"), SERVICES, ids=[s for s, _, _ in SERVICES])
async def test_every_service_declares_real_tables_and_columns(database_url, service, settings_type, retained):
    settings = settings_type(database_url=database_url(service))
    declared = retained(settings)
    assert {k.table.name for k in declared} >= {"inbox", "outbox"}
    assert all(isinstance(k.table.c[k.column].type, DateTime) for k in declared)
    engine = create_engine(settings.database_url, settings.db_schema, pool_size=1)
    sessions = session_factory(engine)
    try:  # the statements run on the service's own tables (a cutoff long past: nothing is deleted)
        long_ago = datetime(2000, 1, 1, tzinfo=UTC)
        removed = await prune(sessions, lock(), declared, long_ago, settings.retention_batch_rows)
        assert removed == {k.table.name: 0 for k in declared}
    finally:
        await engine.dispose()
