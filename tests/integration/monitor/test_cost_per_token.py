"""Cost per token on real Kafka and PostgreSQL: the cost service's price list wins over the allocation's."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from services.monitor.adapters.orm import demand_window, price, server_model
from shared.events import (
    ALLOCATIONS,
    DEMAND,
    PRICES,
    DemandWindowReported,
    GpuPrice,
    ModelLoaded,
    PricesPublished,
    ServerAllocated,
    ServerReleased,
)
from tests.integration.helpers import wait_for
from tests.integration.monitor.support import publish, running_monitor

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


async def count(monitor, query) -> int:
    async with monitor.runtime.sessions() as session:
        return int((await session.execute(query)).scalar_one())


async def stored_cost(monitor, model_id: str) -> float | None:
    async with monitor.runtime.sessions() as session:
        query = select(demand_window.c.cost_per_token).where(demand_window.c.model_id == model_id)
        return (await session.execute(query)).scalar()


async def test_cost_per_token_uses_the_published_spot_price(monitor_settings):
    run = uuid.uuid4().hex[:8]
    region, server_id, model_id = f"test-{run}", f"srv-{run}", f"model-{run}"
    bootstrap = monitor_settings.kafka_bootstrap
    allocated = ServerAllocated(
        source="test", server_id=server_id, endpoint="127.0.0.1:1", metrics_url="http://127.0.0.1:1/metrics",
        region=region, gpu_type="a100_80gb", cost_per_hour=10.0, pricing_class="spot",
    )  # fmt: skip
    prices = PricesPublished(
        source="test",
        prices=[
            GpuPrice(region=region, gpu_type="a100_80gb", on_demand_per_hour=4, spot_per_hour=3.6, reserved_per_hour=2)
        ],
    )
    loaded = ModelLoaded(source="test", server_id=server_id, model_id=model_id, region=region)
    end = datetime.now(UTC)
    window = DemandWindowReported(
        source="test", model_id=model_id, region=region, window_start=end - timedelta(seconds=60), window_end=end,
        requests=10, ok=10, tokens_in=400, tokens_out=600,
    )  # fmt: skip
    async with running_monitor(monitor_settings) as monitor:
        await publish(bootstrap, ALLOCATIONS, model_id, allocated, loaded)
        await publish(bootstrap, PRICES, "prices", prices)
        has_model = select(func.count()).select_from(server_model).where(server_model.c.model_id == model_id)
        has_price = select(func.count()).select_from(price).where(price.c.region == region)
        assert await wait_for(lambda: count(monitor, has_model), timeout=30)
        assert await wait_for(lambda: count(monitor, has_price), timeout=30)
        await publish(bootstrap, DEMAND, model_id, window)
        cost = await wait_for(lambda: stored_cost(monitor, model_id), timeout=30)
        # 3.60 $/h spot (not the allocation's 10 $/h) over 60 s, for 1,000 tokens.
        assert cost == pytest.approx(3.6 * 60 / 3600 / 1000)
        release = ServerReleased(source="test", server_id=server_id, region=region)
        await publish(bootstrap, ALLOCATIONS, model_id, release)
        gone = select(func.count()).select_from(server_model).where(server_model.c.server_id == server_id)
        assert await wait_for(lambda: _zero(monitor, gone), timeout=30)


async def _zero(monitor, query) -> bool:
    return await count(monitor, query) == 0
