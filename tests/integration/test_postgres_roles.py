"""Each service's role owns its schema and cannot reach any other service's tables."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

pytestmark = pytest.mark.integration


async def test_a_service_role_cannot_read_another_services_schema(database_url):
    router = create_async_engine(database_url("router"))
    scaler = create_async_engine(database_url("scaler"))
    async with router.begin() as connection:
        await connection.execute(sa.text("create table if not exists router.role_probe (id int)"))
        await connection.execute(sa.text("insert into router.role_probe values (1)"))
    attempts = {
        "select * from router.role_probe": "permission denied for schema router",
        "create table router.intruder (id int)": "permission denied for schema router",
        "create table public.intruder (id int)": "permission denied for schema public",
    }
    for statement, refusal in attempts.items():
        async with scaler.connect() as connection:
            with pytest.raises(DBAPIError, match=refusal):
                await connection.execute(sa.text(statement))
    async with router.begin() as connection:
        assert (await connection.execute(sa.text("select count(*) from role_probe"))).scalar_one() >= 1
        await connection.execute(sa.text("drop table router.role_probe"))
    await router.dispose()
    await scaler.dispose()
