"""The scaler's Alembic migrations build exactly the tables its code declares."""

from __future__ import annotations

import asyncio

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from services.scaler.adapters.orm import metadata
from services.scaler.app import migrate
from services.scaler.settings import ScalerSettings


def _not_version_table(obj, name, type_, reflected, compare_to) -> bool:
    return not (type_ == "table" and name == "alembic_version")


async def test_scaler_migrations_match_its_tables(database_url):
    url = database_url("scaler")
    await asyncio.to_thread(migrate, ScalerSettings(database_url=url))
    engine = create_async_engine(url)
    async with engine.connect() as connection:

        def compare(sync_connection):
            context = MigrationContext.configure(
                sync_connection, opts={"include_object": _not_version_table, "version_table_schema": metadata.schema}
            )
            return compare_metadata(context, metadata)

        diff = await connection.run_sync(compare)
    await engine.dispose()
    assert diff == []
