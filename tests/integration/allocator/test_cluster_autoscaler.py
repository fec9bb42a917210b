"""The cluster autoscaler on real Kafka and PostgreSQL: a placement that finds no GPUs grows the pool.

The allocator runs with the autoscaler every second and an emulated provider that takes half a
second to deliver. A scale-up asking for more GPUs than the pool has fails (`AllocationFailed`);
the autoscaler then buys what was missed, the GPUs join the pool as free on-demand ones
(`CapacityAdded` on the allocations topic), and the same request asked again is placed.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import func, select

from services.allocator.adapters.orm import gpu, gpu_pool
from services.allocator.app import create_app
from shared.events import ALLOCATIONS, PRICES, SCALING_ACTIONS, ActionKind
from tests.integration.allocator.conftest import serving
from tests.integration.allocator.test_scaling_actions import events_of, has, request, send
from tests.integration.helpers import collect, start_group_at_end

pytestmark = pytest.mark.timeout(300)


async def test_a_placement_short_of_gpus_grows_the_pool_through_the_provider(test_fleet, kafka_bootstrap):
    region, model = test_fleet.region, test_fleet.echo
    settings = test_fleet.settings.model_copy(
        update={"cluster_interval_s": 1.0, "cluster_provision_delay_s": 0.5, "cluster_max_gpus": 10}
    )
    await start_group_at_end(kafka_bootstrap, settings.group_id, SCALING_ACTIONS.name, PRICES.name, ALLOCATIONS.name)
    service = create_app(settings)[1]
    too_many = request(model, region, ActionKind.SCALE_UP, 20)  # 5 GPUs at 4 instances per GPU; 3 are free
    async with serving(service):
        await send(kafka_bootstrap, too_many)
        failed = await events_of(kafka_bootstrap, too_many.action_id, has("allocation_failed"), timeout=60)
        assert [e["type"] for e in failed] == ["allocation_failed"]

        def added(records: list[Any]) -> list[dict[str, Any]]:
            return [
                e for e in (json.loads(r.value) for r in records)
                if e.get("type") == "capacity_added" and e.get("region") == region
            ]  # fmt: skip

        (event,) = added(await collect(kafka_bootstrap, ALLOCATIONS.name, lambda rs: bool(added(rs)), timeout=60))
        assert event["gpus"] == 5 and event["pricing_class"] == "on_demand" and event["gpu_type"] == "a100_80gb"
        async with service.runtime.sessions() as session:
            pool = (await session.execute(select(gpu_pool).where(gpu_pool.c.region == region))).one()
            rows = (await session.execute(select(func.count()).where(gpu.c.region == region))).scalar_one()
        assert (pool.total, pool.available, rows) == (9, 8, 9)  # the books follow the rows

        again = request(model, region, ActionKind.SCALE_UP, 20)  # asked again, as the scaler would
        await send(kafka_bootstrap, again)
        placed = await events_of(kafka_bootstrap, again.action_id, has("server_allocated"), timeout=120)
        assert "allocation_failed" not in {e["type"] for e in placed}
