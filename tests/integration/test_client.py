"""FleetClient on the real Kafka and router: each client reads only its own results, from a reply topic it owns."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from llmfleet.client import CLIENT_REPLY_PREFIX, FleetClient
from services.router.app import migrate
from services.router.settings import RouterSettings, StaticServer
from shared import triton
from shared.events import InferenceCompleted
from tests.integration.router.conftest import private_topic, router_app

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture
def requests_topic(kafka_bootstrap: str):
    with private_topic(kafka_bootstrap, "test.client.requests") as name:
        yield name


async def topics(bootstrap: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


async def test_two_clients_each_read_only_their_own_results(
    kafka_bootstrap: str, database_url: Any, triton_http: str, requests_topic: str
) -> None:
    url = str(database_url("router"))
    await asyncio.to_thread(migrate, RouterSettings(database_url=url))
    await asyncio.to_thread(triton.load_model, triton_http, "tinylm")  # the session's server starts empty
    settings = RouterSettings(
        kafka_bootstrap=kafka_bootstrap,
        database_url=url,
        consumer_group=f"test-client-router-{uuid.uuid4().hex[:8]}",
        instance_id=uuid.uuid4().hex[:6],
        requests_topic=requests_topic,
        health_interval_s=0.3,
        cold_start_models=[],
        follow_allocations=False,
        static_servers=[
            StaticServer(server_id="pytest-0", endpoint=triton_http, gpu_type="a100_80gb", models={"tinylm": "tinylm"})
        ],
    )
    seen: dict[str, list[InferenceCompleted]] = {"a": [], "b": []}
    async with router_app(settings):
        first = FleetClient(kafka_bootstrap, source="test-a", on_result=seen["a"].append, requests_topic=requests_topic)
        second = FleetClient(
            kafka_bootstrap, source="test-b", on_result=seen["b"].append, requests_topic=requests_topic
        )
        async with first, second:
            assert first.reply_topic.startswith(CLIENT_REPLY_PREFIX) and first.reply_topic != second.reply_topic
            assert {first.reply_topic, second.reply_topic} <= await topics(kafka_bootstrap)
            sent = {
                name: [await c.send("tinylm", f"hello {name}{n}", max_tokens=3) for n in range(3)]
                for name, c in (("a", first), ("b", second))
            }
            results = {
                "a": await first.collect(sent["a"], timeout=90),
                "b": await second.collect(sent["b"], timeout=90),
            }
            reply_topics = (first.reply_topic, second.reply_topic)
    for name in ("a", "b"):
        assert set(results[name]) == set(sent[name])
        assert all(r.status == "ok" and r.tokens_out == 3 for r in results[name].values())
        # Each client's reader saw its own results and nothing else: no filtering of others' traffic.
        assert sorted(r.request_id for r in seen[name]) == sorted(sent[name])
    assert not set(reply_topics) & await topics(kafka_bootstrap)  # deleted on close
