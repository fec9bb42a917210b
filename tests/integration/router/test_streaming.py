"""A streamed request: its tokens as InferenceChunk events on the reply topic, then exactly one result."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import pytest

from deploy.local import triton
from tests.integration.router.conftest import Topic, request, router_app, send, static

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


async def test_a_streamed_request_sends_its_tokens_in_order_then_exactly_one_result(
    make_settings, router_tritons, reply_topic, kafka_bootstrap
):
    await asyncio.to_thread(triton.load_model, router_tritons["router-t1"], "tinylm_stream")
    settings = make_settings(static_servers=static(router_tritons, ("router-t1",)))
    tag = uuid.uuid4().hex[:6]
    streamed = [request("tinylm", f"{tag}-s{i}", max_tokens=12, stream=True, reply_topic=reply_topic) for i in range(3)]
    plain = [request("tinylm", f"{tag}-s{i}", max_tokens=12, reply_topic=reply_topic) for i in range(3)]
    plain = [p.model_copy(update={"request_id": f"{tag}-p{i}"}) for i, p in enumerate(plain)]
    ids = {r.request_id for r in streamed + plain}
    async with Topic(kafka_bootstrap, reply_topic) as replies, router_app(settings):
        await send(kafka_bootstrap, [*streamed, *plain], settings.requests_topic)
        done = lambda vs: sum(v["type"] == "inference_completed" and v["request_id"] in ids for v in vs) >= 6  # noqa: E731
        await replies.until(done, timeout=60)
        await asyncio.sleep(1.0)  # a duplicate result would arrive within this
        values = [v for v in replies.values if v.get("request_id") in ids]
    results = [v for v in values if v["type"] == "inference_completed"]
    assert Counter(v["request_id"] for v in results) == Counter(ids)  # exactly one result each
    assert all(v["status"] == "ok" for v in results), results
    by_id = {v["request_id"]: v for v in results}
    for asked in streamed:
        chunks = [v for v in values if v["type"] == "inference_chunk" and v["request_id"] == asked.request_id]
        assert len(chunks) == 12  # one per token, before the result
        assert [c["index"] for c in chunks] == list(range(12))  # in order: keyed by request id
        assert values.index(chunks[-1]) < values.index(by_id[asked.request_id])
        assert "".join(c["text"] for c in chunks) == by_id[asked.request_id]["text"]
        first = by_id[asked.request_id]["timings"]["first_token_ms"]
        assert first is not None and 0 < first < by_id[asked.request_id]["timings"]["inference_ms"]
    # The decoupled variant computes what tinylm computes: same prompt, same greedy text.
    for s, p in zip(streamed, plain, strict=True):
        assert s.prompt == p.prompt and by_id[s.request_id]["text"] == by_id[p.request_id]["text"]
    assert not any(v["type"] == "inference_chunk" and v["request_id"].startswith(f"{tag}-p") for v in values)


async def test_a_server_without_the_streaming_variant_serves_the_request_unstreamed(
    make_settings, router_tritons, reply_topic, kafka_bootstrap
):
    await asyncio.to_thread(triton.unload_model, router_tritons["router-t2"], "tinylm_stream")
    settings = make_settings(static_servers=static(router_tritons, ("router-t2",)))
    asked = request("tinylm", f"{uuid.uuid4().hex[:6]}-u", max_tokens=6, stream=True, reply_topic=reply_topic)
    async with Topic(kafka_bootstrap, reply_topic) as replies, router_app(settings):
        await send(kafka_bootstrap, [asked], settings.requests_topic)
        is_result = lambda v: v["type"] == "inference_completed" and v["request_id"] == asked.request_id  # noqa: E731
        await replies.until(lambda vs: any(is_result(v) for v in vs), timeout=60)
        values = [v for v in replies.values if v.get("request_id") == asked.request_id]
    assert [v["type"] for v in values] == ["inference_completed"]
    assert values[0]["status"] == "ok" and len(values[0]["text"]) == 6 and values[0]["server_id"] == "router-t2"
