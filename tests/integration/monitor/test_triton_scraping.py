"""A real Triton server under load is scraped; its numbers reach the tables and events; killed, it alerts."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import pytest
from sqlalchemy import func, select

from deploy.local import triton
from services.monitor.adapters.orm import metric_window, scrape_target
from shared.events import ALERTS, ALLOCATIONS, SERVER_METRICS, ModelLoaded, ServerAllocated, ServerReleased
from tests.integration.helpers import wait_for
from tests.integration.monitor.support import publish, put_load, read, running_monitor

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

LOAD = 120


@pytest.fixture(scope="module")
def triton_server():
    name = f"monitor-t-{uuid.uuid4().hex[:6]}"
    info = triton.start_server(name, triton.PROFILES["a100_80gb"], models=["echo"], region="us-east-1")
    yield info
    triton.stop_server(name)


def allocation(info: dict, server_id: str) -> ServerAllocated:
    return ServerAllocated(
        source="test",
        server_id=server_id,
        endpoint=info["http_url"],
        metrics_url=info["metrics_url"],
        region="us-east-1",
        gpu_type="a100_80gb",
        cost_per_hour=4.1,
    )


async def scraped(monitor, server_id: str) -> bool:
    async with monitor.runtime.sessions() as session:
        query = select(scrape_target.c.last_scraped_at).where(scrape_target.c.server_id == server_id)
        return (await session.execute(query)).scalar() is not None


@contextlib.asynccontextmanager
async def released_at_end(monitor, server_id: str):
    """Release the test's server while the monitor still runs, so no target outlives the test."""
    try:
        yield
    finally:
        release = ServerReleased(source="test", server_id=server_id, region="us-east-1")
        await publish(monitor.settings.kafka_bootstrap, ALLOCATIONS, server_id, release)
        assert await wait_for(lambda: gone(monitor, server_id), timeout=30)


async def gone(monitor, server_id: str) -> bool:
    async with monitor.runtime.sessions() as session:
        query = select(func.count()).select_from(scrape_target).where(scrape_target.c.server_id == server_id)
        return (await session.execute(query)).scalar_one() == 0


async def latest_windows(monitor, server_id: str) -> dict[str, tuple]:
    async with monitor.runtime.sessions() as session:
        newest = select(func.max(metric_window.c.window_end)).where(metric_window.c.server_id == server_id)
        rows = await session.execute(
            select(metric_window).where(
                metric_window.c.server_id == server_id, metric_window.c.window_end == newest.scalar_subquery()
            )
        )
        return {r.model_id: r for r in rows}


async def test_a_loaded_triton_server_appears_in_tables_and_events(triton_server, monitor_settings):
    server_id, model_id = f"srv-{uuid.uuid4().hex[:8]}", f"echo-{uuid.uuid4().hex[:6]}"
    bootstrap = monitor_settings.kafka_bootstrap
    async with running_monitor(monitor_settings) as monitor, released_at_end(monitor, server_id):
        loaded = ModelLoaded(
            source="test", server_id=server_id, model_id=model_id, region="us-east-1", triton_model="echo"
        )
        await publish(bootstrap, ALLOCATIONS, model_id, allocation(triton_server, server_id), loaded)
        assert await wait_for(lambda: scraped(monitor, server_id), timeout=30)
        assert await put_load(triton_server["http_url"], "echo", LOAD) == LOAD

        async def counted_everything():
            rows = await latest_windows(monitor, server_id)
            return rows if "" in rows and rows[""].requests_ok == LOAD else None

        rows = await wait_for(counted_everything, timeout=30)
        assert rows, "the load never showed up in the monitor's windows"
        server, model = rows[""], rows[model_id]
        assert (server.region, server.gpu_type, server.requests_failed) == ("us-east-1", "a100_80gb", 0)
        assert model.requests_ok == LOAD and server.utilization_derived
        assert 0.0 < server.utilization <= 1.0 and server.latency_avg_ms > 0
        assert server.cost_per_hour == pytest.approx(4.1)

        events = await read(bootstrap, SERVER_METRICS, {"server_id": server_id, "model_id": model_id}, count=1)
        assert any(e["requests_ok"] == LOAD for e in events)
        assert all(e["utilization_derived"] and e["gpu_type"] == "a100_80gb" for e in events)
        exported = monitor.runtime.registry.get_sample_value(
            "llmfleet_monitor_gpu_utilization", {"server": server_id, "region": "us-east-1", "gpu_type": "a100_80gb"}
        )
        assert exported is not None and 0.0 <= exported <= 1.0


async def test_a_killed_server_raises_target_down_and_resolves_when_back(triton_server, monitor_settings):
    server_id = f"srv-{uuid.uuid4().hex[:8]}"
    bootstrap = monitor_settings.kafka_bootstrap
    async with running_monitor(monitor_settings) as monitor, released_at_end(monitor, server_id):
        await publish(bootstrap, ALLOCATIONS, server_id, allocation(triton_server, server_id))
        assert await wait_for(lambda: scraped(monitor, server_id), timeout=30)
        await asyncio.to_thread(triton.kill_server, triton_server["name"])
        match = {"rule": "scrape_target_down", "scope.server_id": server_id}
        firing = await read(bootstrap, ALERTS, match, count=1)
        assert [(e["state"], e["severity"], e["value"]) for e in firing] == [("firing", "critical", 3.0)]
        down = monitor.runtime.registry.get_sample_value("llmfleet_monitor_scrape_targets", {"state": "down"})
        assert down is not None and down >= 1
        await asyncio.to_thread(
            triton.start_server, triton_server["name"], triton.PROFILES["a100_80gb"], ["echo"], None, 8000, "us-east-1"
        )
        both = await read(bootstrap, ALERTS, match, count=2, timeout=60)
        assert [e["state"] for e in both] == ["firing", "resolved"]
        assert both[0]["alert_id"] == both[1]["alert_id"]
