"""SIGTERM to a router process: it stops reading, finishes its open batches, publishes, commits."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.events import INFERENCE_REQUESTS
from tests.integration.helpers import start_group_at_end
from tests.integration.router.conftest import Topic, request, results_for, send, static

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


async def committed_and_end(bootstrap: str, group: str, topic: str) -> tuple[dict[int, int], dict[int, int]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(INFERENCE_REQUESTS.partitions)]
        ends = await consumer.end_offsets(partitions)
        committed = {tp.partition: await consumer.committed(tp) for tp in partitions}
        return committed, {tp.partition: offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()


async def test_sigterm_drains_open_batches_publishes_and_commits(
    make_settings, router_tritons, kafka_bootstrap, tmp_path
):
    settings = make_settings(default_batch_strategy="cost_optimized")  # batches wait up to 500 ms
    group = settings.group_id
    await start_group_at_end(kafka_bootstrap, group, settings.requests_topic)
    env = {
        **os.environ,
        "LLMFLEET_ROUTER_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "LLMFLEET_ROUTER_DATABASE_URL": settings.database_url,
        "LLMFLEET_ROUTER_CONSUMER_GROUP": group,
        "LLMFLEET_ROUTER_FOLLOW_ALLOCATIONS": "false",
        "LLMFLEET_ROUTER_REQUESTS_TOPIC": settings.requests_topic,
        "LLMFLEET_ROUTER_DEFAULT_BATCH_STRATEGY": "cost_optimized",
        "LLMFLEET_ROUTER_STATIC_SERVERS": json.dumps([s.model_dump() for s in static(router_tritons)]),
    }
    log = (tmp_path / "router.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "services.router"], env=env, stdout=log, stderr=log)
    tag = uuid.uuid4().hex[:6]
    try:
        async with Topic(kafka_bootstrap) as results:
            warm = request("echo", f"{tag}-warm", max_tokens=2)
            for _ in range(30):  # until the process has started and owns the partitions
                await send(kafka_bootstrap, [warm], settings.requests_topic)
                if results_for(
                    await results.until(lambda vs: results_for(vs, {warm.request_id}), 2), {warm.request_id}
                ):
                    break
            batch = [request("echo", f"{tag}-{i}", max_tokens=4) for i in range(6)]
            wanted = {r.request_id for r in batch}
            await send(kafka_bootstrap, batch, settings.requests_topic)
            _, sent_up_to = await committed_and_end(kafka_bootstrap, group, settings.requests_topic)
            await asyncio.sleep(0.2)  # read, waiting in a batch that would close at 500 ms
            process.send_signal(signal.SIGTERM)
            values = await results.until(lambda vs: len(results_for(vs, wanted)) >= len(wanted), timeout=20)
        assert await asyncio.to_thread(process.wait, 30) == 0
    finally:
        if process.poll() is None:
            process.kill()
        log.close()
    mine = results_for(values, wanted)
    assert sorted(v["request_id"] for v in mine) == sorted(wanted)
    assert {v["status"] for v in mine} == {"ok"}
    committed, _ = await committed_and_end(kafka_bootstrap, group, settings.requests_topic)
    # Every request up to ours was answered and its offset committed before the process exited.
    assert all(committed[p] >= offset for p, offset in sent_up_to.items()), (committed, sent_up_to)
