"""The router's Alembic migrations build exactly the tables its code declares (no drift)."""

from __future__ import annotations

import asyncio

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from services.router.adapters.orm import metadata
from services.router.app import migrate
from services.router.settings import RouterSettings

pytestmark = pytest.mark.integration


def _not_version_table(obj, name, type_, reflected, compare_to) -> bool:
    return not (type_ == "table" and name == "alembic_version")


async def schema_diff(url: str) -> list:
    engine = create_async_engine(url)
    async with engine.connect() as connection:

        def compare(sync_connection):
            context = MigrationContext.configure(
                sync_connection, opts={"include_object": _not_version_table, "version_table_schema": metadata.schema}
            )
            return compare_metadata(context, metadata)

        diff = await connection.run_sync(compare)
    await engine.dispose()
    return diff


async def test_router_migrations_match_its_tables(database_url):
    url = database_url("router")
    await asyncio.to_thread(migrate, RouterSettings(database_url=url))
    assert await schema_diff(url) == []
