"""Exactly one result per request while a second router joins the group and leaves it mid-stream.

On revocation a router finishes what is in flight for the partitions that move, commits them with
the offsets already answered past the commit (in the commit's metadata), and lets go of the rest;
the new owner skips what is answered and serves the rest. Before this, a join or leave during a
burst answered hundreds of requests twice.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import pytest

from services.router.app import create_app
from tests.integration.router.conftest import Topic, request, results_for, router_app, send, static

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


async def test_a_router_joining_and_leaving_mid_stream_answers_every_request_once(
    make_settings, router_tritons, kafka_bootstrap
):
    # One request in ten is for a model no server has: it waits (cold start) until it is rejected
    # 3 s later, so commits stay behind it while later requests are answered; the commit's metadata
    # is what tells the next owner of a partition which of those not to answer again.
    first = make_settings(
        static_servers=static(router_tritons),
        follow_allocations=False,
        cold_start_models=["absent"],
        cold_start_timeout_s=3.0,
    )
    second = first.model_copy(update={"instance_id": f"second-{uuid.uuid4().hex[:4]}"})
    tag = uuid.uuid4().hex[:6]
    stream = [request("absent" if i % 10 == 0 else "tinylm", f"{tag}-{i}", max_tokens=8) for i in range(900)]
    wanted = {r.request_id for r in stream}

    async def produce() -> None:
        """Send the stream in slices, about 150 requests a second."""
        for start in range(0, len(stream), 30):
            await send(kafka_bootstrap, stream[start : start + 30], first.requests_topic)
            await asyncio.sleep(0.2)

    async with Topic(kafka_bootstrap) as results, router_app(first) as one:
        producing = asyncio.create_task(produce())
        await asyncio.sleep(1.5)
        app, two = create_app(second)  # same group: it takes half the partitions, then gives them back
        await app.start()
        await asyncio.sleep(2.5)
        await app.stop()
        await producing
        values = await results.until(lambda vs: len(results_for(vs, wanted)) >= len(wanted), timeout=90)
        await asyncio.sleep(2.0)  # a duplicate would arrive late
        values = results_for(results.values, wanted)
        assert one.hot_path is not None and two.hot_path is not None
        served_by_second = sum(
            two.metrics_registry.get_sample_value("llmfleet_router_requests_total", {"model": "tinylm", "status": s})
            or 0
            for s in ("ok", "rejected", "failed")
        )
    counts = Counter(v["request_id"] for v in values)
    assert set(counts) == wanted, f"{len(wanted - set(counts))} requests got no result"
    assert [r for r, n in counts.items() if n > 1] == []
    status = {v["request_id"]: v["status"] for v in values}
    assert {status[r.request_id] for r in stream if r.model_id == "tinylm"} == {"ok"}
    assert {status[r.request_id] for r in stream if r.model_id == "absent"} == {"rejected"}
    assert served_by_second > 0  # the second router really took part
