"""Rejections with reasons: unknown model, over-capacity burst, passed deadline; graceful drain."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections import Counter

import pytest

from shared.events import DEADLETTER
from tests.integration.helpers import produce_raw
from tests.integration.router.conftest import Topic, past, request, results_for, router_app, send, static

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


async def test_unknown_model_and_passed_deadline_are_rejected_with_reasons(
    make_settings, router_tritons, kafka_bootstrap
):
    settings = make_settings(static_servers=static(router_tritons), cold_start_models=["some-other-model"])
    tag = uuid.uuid4().hex[:6]
    unknown = request(f"nope-{tag}", f"{tag}-unknown")
    late = request("echo", f"{tag}-late", deadline=past())
    fine = request("echo", f"{tag}-fine", max_tokens=3)
    wanted = {unknown.request_id, late.request_id, fine.request_id}
    async with Topic(kafka_bootstrap) as results, router_app(settings):
        await send(kafka_bootstrap, [unknown, late, fine], settings.requests_topic)
        values = await results.until(lambda vs: len(results_for(vs, wanted)) >= 3)
    by_id = {v["request_id"]: v for v in results_for(values, wanted)}
    assert by_id[unknown.request_id]["status"] == "rejected"
    assert by_id[unknown.request_id]["reason"].startswith("unknown model")
    assert by_id[late.request_id]["status"] == "rejected"
    assert by_id[late.request_id]["reason"].startswith("deadline passed")
    assert by_id[fine.request_id]["status"] == "ok"
    # Alone in its batch, it was flushed by the timer (latency_optimized: 50 ms), not by an arrival.
    assert 45 <= by_id[fine.request_id]["timings"]["batched_ms"] < 400


async def test_an_unreadable_request_is_dead_lettered_and_the_next_one_served(
    make_settings, router_tritons, kafka_bootstrap
):
    settings = make_settings(static_servers=static(router_tritons), follow_allocations=False)
    tag = uuid.uuid4().hex[:6]
    garbage = f'{{"request_id": "{tag}-bad", "prompt": 5'.encode()
    fine = request("echo", f"{tag}-fine", max_tokens=3)
    async with (
        Topic(kafka_bootstrap) as results,
        Topic(kafka_bootstrap, DEADLETTER.name) as letters,
        router_app(settings) as runtime,
    ):
        await produce_raw(
            kafka_bootstrap, settings.requests_topic, [garbage, fine.model_dump_json().encode()], key=b"x"
        )
        values = await results.until(lambda vs: len(results_for(vs, {fine.request_id})) >= 1)
        mine = lambda vs: [v for v in vs if base64.b64decode(v["payload_b64"]) == garbage]  # noqa: E731
        dead = mine(await letters.until(lambda vs: len(mine(vs)) >= 1))
        # Prometheus metrics on the app's registry (the names Grafana queries).
        registry = runtime.metrics_registry
        assert registry.get_sample_value("llmfleet_router_requests_total", {"model": "echo", "status": "ok"}) >= 1
        assert registry.get_sample_value("llmfleet_router_batch_size_count") >= 1
        assert registry.get_sample_value("llmfleet_router_request_latency_seconds_count") >= 1
        assert registry.get_sample_value("llmfleet_router_inflight_batches") == 0
        await asyncio.sleep(settings.health_interval_s * 2)
        assert registry.get_sample_value("llmfleet_router_servers", {"state": "healthy"}) == 2
        assert registry.get_sample_value("llmfleet_router_queue_depth", {"model": "echo"}) == 0
    assert results_for(values, {fine.request_id})[0]["status"] == "ok"
    assert len(dead) == 1 and dead[0]["reason"].startswith("invalid JSON") and dead[0]["consumer"] == "router"
    assert dead[0]["source_topic"] == settings.requests_topic


async def test_results_go_to_the_reply_topic_or_say_why_not(
    make_settings, router_tritons, kafka_bootstrap, reply_topic
):
    settings = make_settings(static_servers=static(router_tritons))
    tag = uuid.uuid4().hex[:6]
    there = request("echo", f"{tag}-there", max_tokens=2, reply_topic=reply_topic)
    nowhere = request("echo", f"{tag}-nowhere", max_tokens=2, reply_topic=f"test.router.missing.{tag}")
    async with (
        Topic(kafka_bootstrap) as shared,
        Topic(kafka_bootstrap, reply_topic) as replies,
        router_app(settings),
    ):
        await send(kafka_bootstrap, [there, nowhere], settings.requests_topic)
        got = results_for(await replies.until(lambda vs: results_for(vs, {there.request_id})), {there.request_id})
        fallback = await shared.until(lambda vs: results_for(vs, {nowhere.request_id}))
    assert [r["status"] for r in got] == ["ok"]
    [result] = results_for(fallback, {nowhere.request_id})
    assert result["status"] == "ok" and "does not exist" in result["reason"]
    assert results_for(shared.values, {there.request_id}) == []


async def test_a_burst_beyond_the_routers_room_waits_in_kafka_and_is_all_served(
    make_settings, router_tritons, kafka_bootstrap
):
    # Room for 20 requests: the router stops fetching (backpressure) instead of rejecting.
    settings = make_settings(
        static_servers=static(router_tritons), max_queued_requests=20, default_batch_strategy="cost_optimized"
    )
    tag = uuid.uuid4().hex[:6]
    burst = [request("echo", f"{tag}-{i}", max_tokens=2) for i in range(200)]
    wanted = {r.request_id for r in burst}
    async with Topic(kafka_bootstrap) as results, router_app(settings) as runtime:
        await send(kafka_bootstrap, burst, settings.requests_topic)
        values = await results.until(lambda vs: len(results_for(vs, wanted)) >= len(wanted), timeout=60)
        await asyncio.sleep(0.5)
        values = results_for(results.values, wanted)
        assert runtime.hot_path.core.held_requests == 0
    assert Counter(v["request_id"] for v in values) == Counter(wanted)
    assert {v["status"] for v in values} == {"ok"}


async def test_a_fail_fast_burst_is_rejected_at_once_when_the_model_is_full(
    make_settings, router_tritons, kafka_bootstrap
):
    # cost_optimized waits up to 500 ms for a batch, so the burst finds the queue full.
    settings = make_settings(
        static_servers=static(router_tritons), max_queue_per_model=10, default_batch_strategy="cost_optimized"
    )
    tag = uuid.uuid4().hex[:6]
    burst = [request("echo", f"{tag}-{i}", max_tokens=2, fail_fast=True) for i in range(40)]
    wanted = {r.request_id for r in burst}
    async with Topic(kafka_bootstrap) as results, router_app(settings):
        await send(kafka_bootstrap, burst, settings.requests_topic)
        values = await results.until(lambda vs: len(results_for(vs, wanted)) >= len(wanted))
        await asyncio.sleep(0.5)
        values = results_for(results.values, wanted)
    assert Counter(v["request_id"] for v in values) == Counter(wanted)
    statuses = Counter(v["status"] for v in values)
    assert statuses["ok"] >= 10 and statuses["rejected"] >= 1 and statuses["ok"] + statuses["rejected"] == 40
    rejected = [v for v in values if v["status"] == "rejected"]
    assert all(v["reason"].startswith("over capacity") for v in rejected)
    # Rejections go out at once, long before the 500 ms batch wait is over.
    assert max(v["timings"]["total_ms"] - v["timings"]["queued_ms"] for v in rejected) < 400


async def test_stopping_finishes_open_batches_and_publishes_their_results(
    make_settings, router_tritons, kafka_bootstrap
):
    settings = make_settings(static_servers=static(router_tritons), default_batch_strategy="cost_optimized")
    tag = uuid.uuid4().hex[:6]
    batch = [request("echo", f"{tag}-{i}", max_tokens=4) for i in range(5)]
    wanted = {r.request_id for r in batch}
    async with Topic(kafka_bootstrap) as results:
        async with router_app(settings) as runtime:
            await send(kafka_bootstrap, batch, settings.requests_topic)
            core = runtime.hot_path.core
            for _ in range(100):  # until the router has read them into an open batch
                if core.batcher.depth("echo") == 5:
                    break
                await asyncio.sleep(0.02)
            assert core.batcher.depth("echo") == 5
        # The app has stopped: the open batch was drained, served and published.
        values = await results.until(lambda vs: len(results_for(vs, wanted)) >= 5, timeout=10)
        assert runtime.hot_path.offsets.pending() == 0
    values = results_for(values, wanted)
    assert sorted(v["request_id"] for v in values) == sorted(wanted)
    assert {v["status"] for v in values} == {"ok"}
