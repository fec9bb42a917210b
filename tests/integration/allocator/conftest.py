"""Fixtures of the allocator's integration tests: a fleet of its own in a unique test region.

Every test gets its own region (so its pools are its own on the shared database), its own model
ids, server-name prefix and consumer group; the finaliser stops every Triton server the test's
allocator started and removes the test's rows.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import create_async_engine

from deploy.local import triton
from services.allocator.adapters.orm import gpu, gpu_pool, gpu_price, model_requirement, server
from services.allocator.app import migrate
from services.allocator.jobs import AllocatorApp
from services.allocator.settings import AllocatorSettings
from tests.integration.helpers import running


@dataclass(frozen=True)
class TestFleet:
    settings: AllocatorSettings
    region: str
    echo: str  # a model id served by the repository's `echo`
    ghost: str  # a model id whose repository name no server has


@pytest.fixture
def test_fleet(tmp_path: Path, kafka_bootstrap: str, database_url) -> Iterator[TestFleet]:
    tag = uuid.uuid4().hex[:8]
    region, echo, ghost = f"test-{tag}", f"echo-{tag}", f"ghost-{tag}"
    config = {
        "gpu_types": {"a100_80gb": {"memory_gb": 80, "on_demand_per_hour": 4.10, "relative_speed": 0.6}},
        "regions": {region: 1.0},
        "pools": {region: {"a100_80gb": [4, 3, 1]}},
        "models": {
            echo: {"min_memory_gb": 1, "preferred_gpu": "a100_80gb", "instances_per_gpu": 4, "triton_model": "echo"},
            ghost: {"min_memory_gb": 1, "preferred_gpu": "a100_80gb", "triton_model": f"no-such-model-{tag}"},
        },
    }
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(config))
    settings = AllocatorSettings(
        kafka_bootstrap=kafka_bootstrap,
        database_url=database_url("allocator"),
        consumer_group=f"test-allocator-{tag}",
        fleet_config=path,
        server_prefix=f"allocator-t{tag}",
        max_servers=2,
    )
    migrate(settings)
    yield TestFleet(settings, region, echo, ghost)
    for name in triton.status():
        if name.startswith(settings.server_prefix):
            triton.stop_server(name)
    asyncio.run(_forget(settings.database_url, region, (echo, ghost)))


async def _forget(url: str, region: str, models: tuple[str, ...]) -> None:
    engine = create_async_engine(url)
    async with engine.begin() as connection:
        for table in (gpu, gpu_pool, gpu_price, server):
            await connection.execute(delete(table).where(table.c.region == region))
        await connection.execute(delete(model_requirement).where(model_requirement.c.model_id.in_(models)))
    await engine.dispose()


@asynccontextmanager
async def serving(service: AllocatorApp) -> AsyncIterator[None]:
    """The allocator's consumers and its jobs (relay, provisioning worker, reconciler) for the block.

    A job that dies fails the test at the end of the block instead of ending the pytest process.
    """
    died: list[tuple[str, BaseException]] = []
    service.background.on_failure = lambda name, error: died.append((name, error))
    async with running(service.runtime.broker):
        await service.start()
        try:
            yield
        finally:
            await service.stop()
    assert not died, died
