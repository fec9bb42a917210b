"""No record can stop the router: each poison kind gets its outcome and the requests behind it are served.

Every poison record goes on the same key (one partition) as the valid requests after it, as the
issue's outside producer did: one wedged record would leave all of them without a result.
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pytest

from shared.events import DEADLETTER
from tests.integration.helpers import produce_raw, wait_for
from tests.integration.router.conftest import Topic, past, request, results_for, router_app, static

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def raw(request_id: str, **fields: Any) -> bytes:
    """A request as a plain producer writes it, with any fields (valid or not)."""
    body = {"source": "outside", "request_id": request_id, "model_id": "echo", "prompt": "hi", "max_tokens": 2}
    return json.dumps(body | fields).encode()


async def test_every_poison_record_gets_its_outcome_and_the_requests_behind_it_are_served(
    make_settings, router_tritons, kafka_bootstrap
):
    settings = make_settings(static_servers=static(router_tritons), follow_allocations=False, max_prompt_bytes=1000)
    tag = uuid.uuid4().hex[:6]
    poison = {
        f"{tag}-naive": raw(f"{tag}-naive", occurred_at="0001-01-01T00:00:00"),
        f"{tag}-naive-deadline": raw(f"{tag}-naive-deadline", deadline="0001-01-01T00:00:00"),
        f"{tag}-unknown-field": raw(f"{tag}-unknown-field", colour="blue"),
        f"{tag}-too-many-tokens": raw(f"{tag}-too-many-tokens", max_tokens=8193),
        f"{tag}-over-model-limit": raw(f"{tag}-over-model-limit", model_id="tinylm", max_tokens=600),
        f"{tag}-internal-topic": raw(f"{tag}-internal-topic", reply_topic="__consumer_offsets"),
        f"{tag}-control-topic": raw(f"{tag}-control-topic", reply_topic="fleet.allocations.v1"),
        f"{tag}-past-deadline": raw(
            f"{tag}-past-deadline", deadline=past().isoformat(), reply_topic=f"test.nowhere.{uuid.uuid4().hex}"
        ),
        f"{tag}-long-prompt": raw(f"{tag}-long-prompt", prompt="x" * 2000),
        f"{tag}-not-a-string": raw(f"{tag}-not-a-string", prompt=5),
    }
    huge = b"\x00not json" + b"z" * 800_000
    valid = [request("echo", f"{tag}-ok-{i}", max_tokens=2).model_dump_json().encode() for i in range(20)]
    answerable = set(poison) | {f"{tag}-ok-{i}" for i in range(20)}
    async with (
        Topic(kafka_bootstrap) as results,
        Topic(kafka_bootstrap, DEADLETTER.name) as letters,
        router_app(settings),
    ):
        await produce_raw(kafka_bootstrap, settings.requests_topic, [*poison.values(), huge, *valid], key=b"same")
        values = await results.until(lambda vs: len(results_for(vs, answerable)) >= len(answerable), timeout=60)
        mine = lambda vs: [v for v in vs if v["source_topic"] == settings.requests_topic]  # noqa: E731
        dead = mine(await letters.until(lambda vs: len(mine(vs)) >= 5, timeout=20))
    by_id: dict[str, list[dict[str, Any]]] = {}
    for value in results_for(values, answerable):
        by_id.setdefault(value["request_id"], []).append(value)
    assert set(by_id) == answerable and all(len(v) == 1 for v in by_id.values())  # exactly one each
    status = {k: v[0]["status"] for k, v in by_id.items()}
    reason = {k: v[0]["reason"] or "" for k, v in by_id.items()}
    assert all(status[f"{tag}-ok-{i}"] == "ok" for i in range(20))
    # A naive time is UTC (the contract); a year-1 occurred_at is replaced by Kafka's timestamp.
    assert status[f"{tag}-naive"] == "ok"
    assert by_id[f"{tag}-naive"][0]["timings"]["total_ms"] < 60_000
    assert status[f"{tag}-naive-deadline"] == "rejected" and reason[f"{tag}-naive-deadline"].startswith("deadline")
    assert status[f"{tag}-unknown-field"] == "ok"  # forward compatible: unknown fields are ignored
    assert reason[f"{tag}-too-many-tokens"].startswith("invalid request: validation failed: max_tokens")
    assert "exceeds tinylm's limit of 512" in reason[f"{tag}-over-model-limit"]
    assert "internal or control topic" in reason[f"{tag}-internal-topic"]
    assert "internal or control topic" in reason[f"{tag}-control-topic"]
    assert reason[f"{tag}-past-deadline"].startswith("deadline passed")
    assert "exceeds the limit of 1000" in reason[f"{tag}-long-prompt"]
    assert reason[f"{tag}-not-a-string"].startswith("invalid request")
    for name in poison:
        if name not in (f"{tag}-naive", f"{tag}-unknown-field"):
            assert status[name] == "rejected", name
    # The unreadable ones are kept as dead letters; the huge one cut down, saying so.
    letter = next(d for d in dead if base64.b64decode(d["payload_b64"]).startswith(b"\x00not json"))
    assert "truncated" in letter["reason"] and len(base64.b64decode(letter["payload_b64"])) < len(huge)


async def test_a_result_too_large_for_kafka_becomes_a_failed_result_not_a_frozen_partition(
    make_settings, router_tritons, kafka_bootstrap
):
    # The producer's limit is lowered below the result's size: the result shrinks to fit.
    settings = make_settings(static_servers=static(router_tritons), follow_allocations=False)
    tag = uuid.uuid4().hex[:6]
    big = request("echo", f"{tag}-big", max_tokens=6000)
    after = request("echo", f"{tag}-after", max_tokens=2)
    async with Topic(kafka_bootstrap) as results, router_app(settings) as runtime:
        runtime.hot_path.delivery.producer._max_request_size = 4_000  # as if the result were over 1 MiB
        await produce_raw(
            kafka_bootstrap, settings.requests_topic, [big.model_dump_json().encode(), after.model_dump_json().encode()]
        )
        ids = {big.request_id, after.request_id}
        values = results_for(await results.until(lambda vs: len(results_for(vs, ids)) >= 2, timeout=30), ids)
        # Nothing holds the partition's commits back (the ack may land just after the consumer saw it).
        assert await wait_for(lambda: runtime.hot_path.offsets.pending() == 0, timeout=10)
    by_id = {v["request_id"]: v for v in values}
    assert by_id[after.request_id]["status"] == "ok"
    assert by_id[big.request_id]["status"] == "failed" and "too large" in by_id[big.request_id]["reason"]
