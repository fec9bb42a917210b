"""A cost service on the real Kafka and PostgreSQL, with a GPU type of its own for isolation.

The shared schema keeps other runs' fleets; pricing this test's pool under a unique GPU type
(a100 prices, us-east-1) keeps its numbers hand-checkable. The fixture removes its rows after.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import delete

from services.cost.adapters.orm import fleet_server, gpu_price, recommendation, server_model, server_utilization
from services.cost.app import create_app, migrate
from services.cost.domain.pricing import GpuRate
from services.cost.settings import CostSettings
from services.cost.use_cases import operations
from shared.events import ALLOCATIONS, COST_REPORTS, DEMAND, FORECASTS, SERVER_METRICS, USAGE
from tests.integration.helpers import running, start_group_at_end


@pytest.fixture
def gpu_type() -> str:
    return f"a100-test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def cost_app(request, kafka_bootstrap, database_url, gpu_type):
    settings = CostSettings(
        kafka_bootstrap=kafka_bootstrap,
        database_url=database_url("cost"),
        consumer_group=f"test-cost-{uuid.uuid4().hex[:8]}",
        # Most tests run cycles themselves; one asks for a schedule (indirect parameter).
        report_interval_s=getattr(request, "param", 3600.0),
    )
    await asyncio.to_thread(migrate, settings)
    topics = (ALLOCATIONS.name, SERVER_METRICS.name, DEMAND.name, FORECASTS.name, COST_REPORTS.name, USAGE.name)
    await start_group_at_end(kafka_bootstrap, settings.group_id, *topics)
    _app, cost = create_app(settings)
    runtime = cost.runtime
    await operations.set_gpu_rate(runtime.sessions, GpuRate(gpu_type, 4.10, 1.23, 2.87), "test", datetime.now(UTC))
    async with running(runtime.broker):
        await cost.start()
        yield cost
        await cost.stop()
        await _remove_test_rows(runtime, gpu_type)
        # The shared stack's latest price list should not keep listing the test's GPU type.
        await operations.publish_prices(runtime.sessions, "test", datetime.now(UTC))
        await cost.relay.publish_pending()
    await runtime.close()


async def _remove_test_rows(runtime, gpu_type: str) -> None:
    async with runtime.sessions.begin() as session:
        servers = fleet_server.c.gpu_type == gpu_type
        ids = [row.server_id for row in (await session.execute(fleet_server.select().where(servers))).all()]
        await session.execute(delete(server_model).where(server_model.c.server_id.in_(ids)))
        await session.execute(delete(server_utilization).where(server_utilization.c.server_id.in_(ids)))
        await session.execute(delete(fleet_server).where(servers))
        await session.execute(delete(recommendation).where(recommendation.c.gpu_type == gpu_type))
        await session.execute(delete(gpu_price).where(gpu_price.c.gpu_type == gpu_type))
