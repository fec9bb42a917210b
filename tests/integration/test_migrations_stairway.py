"""Stairway: every migration of every service goes up, down and up again, then all the way down.

A downgrade that is missing or leaves something behind fails here, not during a rollback in
production. Each service migrates in a database made for the test (its schema empty, owned by
its role), so the schemas other tests use are never touched.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from deploy.local import postgres
from deploy.local.postgres import SERVICES
from shared.migrations import alembic_config
from tests.support.databases import SERVICES_DIR, admin_url

pytestmark = pytest.mark.integration


@pytest.fixture
async def fresh_database(postgres_info: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    """A database of its own, with each service's empty schema owned by the service's role."""
    name = f"stairway_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(admin_url(postgres_info, "postgres"), isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(text(f"create database {name}"))
    inside = create_async_engine(admin_url(postgres_info, name), isolation_level="AUTOCOMMIT")
    async with inside.connect() as connection:
        for service in SERVICES:
            await connection.execute(text(f"create schema {service} authorization {service}"))
    await inside.dispose()
    try:
        yield dict(postgres_info, database=name)
    finally:
        async with admin.connect() as connection:
            await connection.execute(text(f"drop database {name} with (force)"))
        await admin.dispose()


async def tables_in(url: str, schema: str) -> set[str]:
    """The tables (and the sequences, views) left in `schema`, the version table excepted."""
    engine = create_async_engine(url)
    async with engine.connect() as connection:
        rows = await connection.execute(
            text("select relname from pg_class c join pg_namespace n on n.oid = c.relnamespace where nspname = :s"),
            {"s": schema},
        )
        names = {row[0] for row in rows}
    await engine.dispose()
    return {n for n in names if not n.startswith("alembic_version")}


def climb(config: Config) -> list[str]:
    """Up, down one, up again for each revision in order, ending at head; returns the revisions."""
    revisions = [script.revision for script in reversed(list(ScriptDirectory.from_config(config).walk_revisions()))]
    for revision in revisions:
        command.upgrade(config, revision)
        command.downgrade(config, "-1")
        command.upgrade(config, revision)
    return revisions


@pytest.mark.parametrize("service", SERVICES)
async def test_each_migration_goes_up_down_and_up_again(service: str, fresh_database: dict[str, Any]) -> None:
    url = postgres.database_url(service, fresh_database)
    config = alembic_config(SERVICES_DIR / service / "migrations", url, service)
    assert await asyncio.to_thread(climb, config), f"{service} has no migrations"
    assert await tables_in(url, service), "head builds no tables"
    await asyncio.to_thread(command.downgrade, config, "base")
    assert await tables_in(url, service) == set(), "downgrade to base left these behind"
