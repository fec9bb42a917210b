"""Cold start: the router asks for the model, holds the request, serves it once a server is announced.

The test publishes ServerAllocated / ModelLoaded itself, as the allocator would. The registry
lands in the router's tables, so a restarted router knows the server without a replay.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import select

from services.router.adapters import repository
from services.router.adapters.orm import server, server_model
from services.router.app import create_app
from services.router.use_cases import allocations
from shared.events import ALLOCATIONS, DEMAND, MODEL_REQUESTS, AllocationFailed, ModelLoaded, ServerAllocated
from tests.integration.router.conftest import Topic, request, results_for, router_app, send

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


async def test_a_cold_start_request_is_served_once_a_server_is_announced(
    make_settings, router_tritons, kafka_bootstrap
):
    settings = make_settings(cold_start_models=["*"])  # no static servers: only allocation events bring them
    tag = uuid.uuid4().hex[:6]
    model, server_id = f"cold-{tag}", f"router-cold-{tag}"
    asked = request(model, f"{tag}-cold", max_tokens=6, user_region="eu-west-1")
    demand = Topic(kafka_bootstrap, DEMAND.name)
    async with Topic(kafka_bootstrap) as results, Topic(kafka_bootstrap, MODEL_REQUESTS.name) as asks, demand:
        async with router_app(settings) as runtime:
            await send(kafka_bootstrap, [asked], settings.requests_topic)
            wanted = await asks.until(lambda vs: any(v["model_id"] == model for v in vs))
            ask = next(v for v in wanted if v["model_id"] == model)
            assert ask["region"] == "eu-west-1" and ask["pending_requests"] >= 1
            assert results_for(results.values, {asked.request_id}) == []  # held, not rejected
            allocated = ServerAllocated(
                source="test",
                server_id=server_id,
                endpoint=router_tritons["router-t2"],
                metrics_url="http://unused/metrics",
                region="eu-west-1",
                gpu_type="h100_80gb",
                cost_per_hour=3.5,
                capacity=2,
            )
            loaded = ModelLoaded(
                source="test", server_id=server_id, model_id=model, region="eu-west-1", triton_model="echo"
            )
            await send(kafka_bootstrap, [loaded, allocated], topic=ALLOCATIONS.name, key=model)  # either order works
            values = await results.until(lambda vs: len(results_for(vs, {asked.request_id})) >= 1)
            # The demand window (1 s in the tests) counts the request for the scaler.
            windows = await demand.until(lambda vs: any(v["model_id"] == model and v["ok"] for v in vs), timeout=10)
        async with runtime.sessions() as session:
            servers = (await session.execute(select(server).where(server.c.server_id == server_id))).all()
            placements = (await session.execute(select(server_model).where(server_model.c.model_id == model))).all()
        await runtime.close()
    [result] = results_for(values, {asked.request_id})
    assert result["status"] == "ok" and result["server_id"] == server_id and result["tokens_out"] == 6
    [window] = [w for w in windows if w["model_id"] == model and w["ok"]]
    assert (window["requests"], window["ok"], window["region"], window["batches"]) == (1, 1, "eu-west-1", 1)
    assert window["tokens_out"] == 6 and window["latency_p95_ms"] > 0
    assert len(servers) == 1 and servers[0].endpoint == router_tritons["router-t2"]
    assert [(p.server_id, p.triton_model) for p in placements] == [(server_id, "echo")]
    # A fresh router (a restart) reads the registry from its tables: no replay needed.
    _app, restarted = create_app(settings)

    registry = await allocations.load_registry(restarted.sessions, [])
    assert registry.triton_name(server_id, model) == "echo" and registry.servers[server_id].cost_per_hour == 3.5
    async with restarted.sessions.begin() as session:  # the test's server goes when the session's Triton does
        await repository.delete_server(session, server_id)
    await restarted.close()


async def test_an_allocation_failure_rejects_the_held_requests_with_its_reason(make_settings, kafka_bootstrap):
    settings = make_settings(cold_start_models=["*"])
    tag = uuid.uuid4().hex[:6]
    model = f"cold-{tag}"
    held = request(model, f"{tag}-held", user_region="ap-southeast-1")
    async with Topic(kafka_bootstrap) as results, router_app(settings) as runtime:
        await send(kafka_bootstrap, [held], settings.requests_topic)
        for _ in range(100):
            if runtime.hot_path.core.hold.count(model):
                break
            await asyncio.sleep(0.05)
        failed = AllocationFailed(
            source="test", model_id=model, region="ap-southeast-1", reason="no GPU with 80 GB free"
        )
        await send(kafka_bootstrap, [failed], topic=ALLOCATIONS.name, key=model)
        values = await results.until(lambda vs: len(results_for(vs, {held.request_id})) >= 1)
    [result] = results_for(values, {held.request_id})
    assert result["status"] == "rejected" and "no GPU with 80 GB free" in result["reason"]
