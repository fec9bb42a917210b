"""SIGKILL of a router mid-stream: after its restart every request has exactly one result.

The router commits every 2 s here, so at the kill many results are acknowledged but not
committed: the restarted router must read them back from the result topics and not answer again.
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
from pathlib import Path
from typing import Any

import pytest

from tests.integration.helpers import start_group_at_end
from tests.integration.router.conftest import Topic, request, results_for, send, static

pytestmark = [pytest.mark.integration, pytest.mark.timeout(150)]


def start_router(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`python -m services.router` with its output in `log`."""
    out = log.open("ab")
    return subprocess.Popen([sys.executable, "-m", "services.router"], env=env, stdout=out, stderr=out)


async def test_a_router_killed_mid_stream_and_restarted_answers_every_request_once(
    make_settings, router_tritons, kafka_bootstrap, reply_topic, tmp_path
):
    settings = make_settings()
    await start_group_at_end(kafka_bootstrap, settings.group_id, settings.requests_topic)
    env: dict[str, Any] = {
        **os.environ,
        "LLMFLEET_ROUTER_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "LLMFLEET_ROUTER_DATABASE_URL": settings.database_url,
        "LLMFLEET_ROUTER_CONSUMER_GROUP": settings.group_id,
        "LLMFLEET_ROUTER_FOLLOW_ALLOCATIONS": "false",
        "LLMFLEET_ROUTER_REQUESTS_TOPIC": settings.requests_topic,
        "LLMFLEET_ROUTER_COMMIT_INTERVAL_S": "2.0",
        "LLMFLEET_ROUTER_REPLY_TOPIC_PREFIXES": json.dumps(["test."]),
        "LLMFLEET_ROUTER_STATIC_SERVERS": json.dumps([s.model_dump() for s in static(router_tritons)]),
    }
    tag = uuid.uuid4().hex[:6]
    # Half the results go to a reply topic: those must be read back too.
    stream = [
        request("echo", f"{tag}-{i}", max_tokens=4, reply_topic=reply_topic if i % 2 else None) for i in range(600)
    ]
    wanted = {r.request_id for r in stream}
    log = tmp_path / "router.log"
    router = start_router(env, log)
    try:
        async with Topic(kafka_bootstrap) as shared, Topic(kafka_bootstrap, reply_topic) as replies:
            await send(kafka_bootstrap, stream[:20], settings.requests_topic)
            await shared.until(lambda vs: len(results_for(vs, wanted)) >= 5, timeout=60)  # it serves
            for start in range(20, 400, 20):
                await send(kafka_bootstrap, stream[start : start + 20], settings.requests_topic)
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)
            router.send_signal(signal.SIGKILL)  # results of the last ~2 s are acknowledged, not committed
            await asyncio.to_thread(router.wait, 10)
            await send(kafka_bootstrap, stream[400:], settings.requests_topic)
            router = start_router(env, log)
            both = lambda: results_for(shared.values, wanted) + results_for(replies.values, wanted)  # noqa: E731
            for _ in range(120):
                await shared.until(lambda vs: False, timeout=0.25)
                await replies.until(lambda vs: False, timeout=0.25)
                if len({v["request_id"] for v in both()}) >= len(wanted):
                    break
            await shared.until(lambda vs: False, timeout=2.0)  # a repeat would arrive within this
            await replies.until(lambda vs: False, timeout=1.0)
            values = both()
    finally:
        router.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(router.wait, 30)
        except subprocess.TimeoutExpired:
            router.kill()
    counts = Counter(v["request_id"] for v in values)
    assert set(counts) == wanted, f"{len(wanted - set(counts))} requests got no result"
    repeated = sorted(r for r, n in counts.items() if n > 1)
    assert repeated == [], f"{len(repeated)} answered twice, e.g. {repeated[:3]}"
    assert "results read back" in log.read_text()  # the restart did look (the kill left work uncommitted)
