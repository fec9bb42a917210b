"""The router's Alembic migrations build exactly the tables its code declares."""

from __future__ import annotations

import asyncio

import pytest

from services.router.adapters.orm import metadata
from services.router.app import migrate
from services.router.settings import RouterSettings
from tests.integration.test_migrations import schema_diff

pytestmark = pytest.mark.integration


async def test_router_migrations_match_its_tables(database_url):
    url = database_url("router")
    await asyncio.to_thread(migrate, RouterSettings(database_url=url))
    assert await schema_diff(url, metadata) == []
