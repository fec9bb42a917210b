"""Three router processes with no instance id set share the request partitions; every request gets one result.

Before, every replica defaulted to instance id 0 (`--scale router=3` in Compose), so they shared one
registry consumer group and each saw a third of the allocation events.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from tests.integration.helpers import start_group_at_end
from tests.integration.router.conftest import Topic, request, results_for, send, static

pytestmark = [pytest.mark.integration, pytest.mark.timeout(150)]


async def members(bootstrap: str, group: str) -> list[str]:
    """Client ids of the group's members, as the broker sees them."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        responses: Any = await admin.describe_consumer_groups([group])
        # Each group: (error_code, group, state, protocol_type, protocol, members); a member's client id is [1].
        return sorted(member[1] for response in responses for g in response.groups for member in g[5])
    finally:
        await admin.close()


async def test_three_router_processes_share_the_partitions_and_answer_each_request_once(
    make_settings, router_tritons, kafka_bootstrap, tmp_path
):
    settings = make_settings()
    group = settings.group_id
    await start_group_at_end(kafka_bootstrap, group, settings.requests_topic)
    env = {k: v for k, v in os.environ.items() if k != "LLMFLEET_ROUTER_INSTANCE_ID"}
    env |= {
        "LLMFLEET_ROUTER_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "LLMFLEET_ROUTER_DATABASE_URL": settings.database_url,
        "LLMFLEET_ROUTER_CONSUMER_GROUP": group,
        "LLMFLEET_ROUTER_FOLLOW_ALLOCATIONS": "false",
        "LLMFLEET_ROUTER_REQUESTS_TOPIC": settings.requests_topic,
        "LLMFLEET_ROUTER_STATIC_SERVERS": json.dumps([s.model_dump() for s in static(router_tritons)]),
    }
    logs = [(tmp_path / f"router-{i}.log").open("wb") for i in range(3)]
    routers = [subprocess.Popen([sys.executable, "-m", "services.router"], env=env, stdout=f, stderr=f) for f in logs]
    tag = uuid.uuid4().hex[:6]
    try:
        async with Topic(kafka_bootstrap) as results:
            for _ in range(60):  # until all three have joined the group
                if len(await members(kafka_bootstrap, group)) == 3:
                    break
                await asyncio.sleep(1.0)
            joined = await members(kafka_bootstrap, group)
            stream = [request("echo", f"{tag}-{i}", max_tokens=4) for i in range(600)]
            wanted = {r.request_id for r in stream}
            await send(kafka_bootstrap, stream, settings.requests_topic)
            await results.until(lambda vs: len(results_for(vs, wanted)) >= len(wanted), timeout=60)
            await asyncio.sleep(1.0)  # a duplicate would arrive within this
            values = results_for(results.values, wanted)
    finally:
        for router in routers:
            router.send_signal(signal.SIGTERM)
        for router in routers:
            try:
                await asyncio.to_thread(router.wait, 40)
            except subprocess.TimeoutExpired:
                router.kill()
        for f in logs:
            f.close()
    assert len(joined) == 3 and len(set(joined)) == 3, joined  # three distinct instance ids
    counts = Counter(v["request_id"] for v in values)
    assert set(counts) == wanted and set(counts.values()) == {1}
    assert {v["status"] for v in values} == {"ok"}
