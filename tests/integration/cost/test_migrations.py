"""The cost service's migrations seed the issue's catalogue (drift: tests/integration/test_migrations.py)."""

from __future__ import annotations

import asyncio

import pytest

from services.cost.adapters import repository
from services.cost.app import migrate
from services.cost.settings import CostSettings
from shared.db import create_engine, session_factory

pytestmark = pytest.mark.integration


async def test_catalogue_is_seeded_with_the_defaults(database_url):
    url = database_url("cost")
    await asyncio.to_thread(migrate, CostSettings(database_url=url))
    engine = create_engine(url, "cost")
    async with session_factory(engine)() as session:
        catalogue = await repository.SqlCostRepository(session).load_catalogue()
    await engine.dispose()
    price = catalogue.price("eu-west-1", "a100_80gb")
    assert price is not None and price.on_demand == pytest.approx(4.715)
    h100 = catalogue.price("us-east-1", "h100_80gb")
    assert h100 is not None and (h100.on_demand, h100.spot, h100.reserved) == (8.00, 2.40, 5.60)
    region = catalogue.region("ap-southeast-1")
    assert region is not None and (region.multiplier, region.egress_per_gb) == (1.25, 0.15)
