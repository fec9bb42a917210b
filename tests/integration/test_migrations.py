"""Each service's Alembic migrations build exactly the tables its code declares (no drift).

The migrations run the way a deployment's migration job runs them (`python -m deploy.init migrate`),
as the service's own role, then Alembic compares the database with the service's table metadata.
"""

from __future__ import annotations

import asyncio
import importlib

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import create_async_engine

from deploy.local.postgres import SERVICES
from shared.migrations import upgrade
from tests.support.databases import SERVICES_DIR

pytestmark = pytest.mark.integration


def _not_version_table(obj, name, type_, reflected, compare_to) -> bool:
    return not (type_ == "table" and name == "alembic_version")


async def schema_diff(url: str, metadata: MetaData) -> list:
    """What Alembic would have to change to make the database match `metadata`."""
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


@pytest.mark.parametrize("service", SERVICES)
async def test_migrations_match_the_tables_the_code_declares(service: str, database_url) -> None:
    url = database_url(service)
    await asyncio.to_thread(upgrade, SERVICES_DIR / service / "migrations", url, service)
    metadata = importlib.import_module(f"services.{service}.adapters.orm").metadata
    assert await schema_diff(url, metadata) == []
