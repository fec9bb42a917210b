"""Requests for two models across two Triton servers: exactly one result each, load spread."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import pytest

from deploy.local import triton
from tests.integration.helpers import wait_for
from tests.integration.router.conftest import Topic, request, results_for, router_app, send, static

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


async def test_a_few_hundred_requests_for_two_models_each_get_exactly_one_result(
    make_settings, router_tritons, kafka_bootstrap
):
    settings = make_settings(static_servers=static(router_tritons), batch_strategies={"tinylm": "throughput_optimized"})
    tag = uuid.uuid4().hex[:6]
    echo = [
        request("echo", f"{tag}-e{i}", max_tokens=5 + i % 20, user_region=("us-east-1", "eu-west-1")[i % 2])
        for i in range(240)
    ]
    lm = [request("tinylm", f"{tag}-t{i}", max_tokens=4, user_region="eu-west-1") for i in range(60)]
    wanted = {r.request_id: r for r in echo + lm}
    async with Topic(kafka_bootstrap) as results, router_app(settings):
        await send(kafka_bootstrap, [*echo, *lm], settings.requests_topic)
        values = await results.until(lambda vs: len(results_for(vs, set(wanted))) >= len(wanted), timeout=60)
        await asyncio.sleep(1.0)  # a duplicate would arrive within this
        values = results_for(results.values, set(wanted))
    by_id = Counter(v["request_id"] for v in values)
    assert set(by_id) == set(wanted) and set(by_id.values()) == {1}
    assert all(v["status"] == "ok" for v in values), [v["reason"] for v in values if v["status"] != "ok"][:3]
    for v in values:
        asked = wanted[v["request_id"]]
        assert v["model_id"] == asked.model_id
        assert v["tokens_out"] == asked.max_tokens
        assert v["timings"]["inference_ms"] > 0 and v["timings"]["total_ms"] >= v["timings"]["inference_ms"]
    assert {v["server_id"] for v in values} == set(router_tritons)  # both servers took batches


async def test_a_triton_server_killed_mid_run_costs_no_request(make_settings, router_tritons, kafka_bootstrap):
    settings = make_settings(static_servers=static(router_tritons), health_interval_s=0.2)
    tag = uuid.uuid4().hex[:6]
    waves = [
        [request("echo", f"{tag}-{w}-{i}", max_tokens=8, user_region="us-east-1") for i in range(50)] for w in range(6)
    ]
    wanted = {r.request_id for wave in waves for r in wave}
    try:
        async with Topic(kafka_bootstrap) as results, router_app(settings) as runtime:
            for number, wave in enumerate(waves):
                await send(kafka_bootstrap, wave, settings.requests_topic)
                if number == 2:
                    await asyncio.to_thread(triton.kill_server, "router-t1")
                await asyncio.sleep(0.3)
            values = await results.until(lambda vs: len(results_for(vs, wanted)) >= len(wanted), timeout=60)
            registry = runtime.hot_path.core.dispatcher.registry
            assert registry.servers["router-t1"].healthy is False
            # Restarted, it passes the readiness check and is a candidate again.
            await asyncio.to_thread(
                triton.start_server, "router-t1", triton.PROFILES["h100_80gb"], ["echo", "tinylm"], region="us-east-1"
            )
            assert await wait_for(lambda: registry.servers["router-t1"].healthy, timeout=15)
    finally:
        await asyncio.to_thread(  # a no-op when the test got as far as restarting it
            triton.start_server, "router-t1", triton.PROFILES["h100_80gb"], ["echo", "tinylm"], region="us-east-1"
        )
    values = results_for(values, wanted)
    assert Counter(v["request_id"] for v in values) == Counter(wanted)
    assert all(v["status"] == "ok" for v in values), [v["reason"] for v in values if v["status"] != "ok"][:3]
    late = {v["server_id"] for v in values if v["request_id"].split("-")[1] in {"4", "5"}}
    assert late == {"router-t2"}
