"""The bounded failure path on real Kafka and PostgreSQL: no record can hold a consumer forever.

Each test reads its own one-partition topic with `shared.subscribe.subscribe` as a service does
(the scaler's schema holds the delivery counts), with a small retry policy so it runs in seconds.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from faststream.kafka import KafkaBroker
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from services.scaler.adapters.orm import delivery_attempt
from services.scaler.app import migrate
from services.scaler.settings import ScalerSettings
from shared.broker import ensure_topics
from shared.db import create_engine, session_factory
from shared.delivery import SqlDeliveryLedger
from shared.events import DEADLETTER, DemandWindowReported, Topic
from shared.subscribe import RetryPolicy, subscribe, topic_group
from tests.integration.helpers import collect, produce_raw, running, wait_for

pytestmark = pytest.mark.integration

SMALL = RetryPolicy(
    attempts=2,
    backoff_s=0.05,
    transient_budget_s=1.5,
    transient_backoff_s=0.1,
    transient_backoff_max_s=0.4,
    deliveries=1,
    dead_letter_attempts=2,
    dead_letter_backoff_s=0.05,
)


@pytest.fixture
async def sessions(kafka_bootstrap: str, database_url) -> AsyncIterator[Any]:
    url = database_url("scaler")
    await asyncio.to_thread(migrate, ScalerSettings(kafka_bootstrap=kafka_bootstrap, database_url=url))
    engine = create_engine(url, "scaler")
    yield session_factory(engine)
    await engine.dispose()


@pytest.fixture
async def topic(kafka_bootstrap: str) -> Topic[DemandWindowReported]:
    """A fresh one-partition topic: offsets from 0, no other test's records."""
    fresh = Topic(f"test.bounded-delivery.{uuid.uuid4().hex[:10]}", 1, (DemandWindowReported,))
    await ensure_topics(kafka_bootstrap, (fresh,))
    return fresh


def demand(model_id: str) -> bytes:
    start = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    event = DemandWindowReported(
        source="test",
        model_id=model_id,
        region="us-east-1",
        window_start=start,
        window_end=start + timedelta(seconds=10),
        requests=1,
    )
    return event.model_dump_json().encode()


def consumer_broker(bootstrap: str) -> KafkaBroker:
    # A short graceful timeout: stopping with a handler in progress cancels it soon, like a crash
    # (the offset is not committed).
    return KafkaBroker(bootstrap, client_id="bounded-delivery-test", graceful_timeout=0.5, logger=None)


async def letters_of(bootstrap: str, group: str, count: int) -> list[dict[str, Any]]:
    def mine(records: list[Any]) -> list[dict[str, Any]]:
        letters = (json.loads(record.value) for record in records)
        return [letter for letter in letters if letter["consumer"] == group]

    return mine(await collect(bootstrap, DEADLETTER.name, lambda records: len(mine(records)) >= count))


async def committed(bootstrap: str, group: str, topic: str) -> int | None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    found = offsets.get(TopicPartition(topic, 0))
    return found.offset if found else None


async def rows(sessions: Any, group: str) -> list[tuple[int, int]]:
    async with sessions() as session:
        query = select(delivery_attempt.c.record_offset, delivery_attempt.c.attempts).where(
            delivery_attempt.c.consumer_group == group
        )
        return [(int(o), int(a)) for o, a in (await session.execute(query)).all()]


def recording(handled: list[str], fail: Callable[[str], None] = lambda model_id: None) -> Any:
    async def handler(event: DemandWindowReported) -> None:
        fail(event.model_id)
        handled.append(event.model_id)

    return handler


async def test_a_record_whose_transient_errors_outlast_the_budget_is_parked_and_the_consumer_goes_on(
    kafka_bootstrap, sessions, topic
):
    group = f"test-bounded-{uuid.uuid4().hex[:8]}"
    handled: list[str] = []

    def database_down_for(model_id: str) -> None:
        if model_id == "down":
            raise OperationalError("insert", {}, ConnectionRefusedError("database down"))

    broker = consumer_broker(kafka_bootstrap)
    ledger = SqlDeliveryLedger(sessions, delivery_attempt)
    subscribe(broker, topic, group, recording(handled, database_down_for), "test", retry=SMALL, ledger=ledger)
    async with running(broker):
        await produce_raw(kafka_bootstrap, topic.name, [demand("down"), demand("after")])
        assert await wait_for(lambda: handled == ["after"], timeout=30)
        kafka_group = topic_group(group, topic.name)
        assert await wait_for(lambda: _equals(committed(kafka_bootstrap, kafka_group, topic.name), 2), timeout=15)
    [letter] = await letters_of(kafka_bootstrap, group, 1)
    assert letter["source_offset"] == 0 and letter["source_topic"] == topic.name
    assert letter["reason"].startswith("transient errors for ") and "database down" in letter["reason"]
    assert await rows(sessions, topic_group(group, topic.name)) == []  # counted while in flight, forgotten after


async def test_a_record_that_stopped_its_consumer_is_parked_by_the_next_one_without_running_the_handler(
    kafka_bootstrap, sessions, topic
):
    group = f"test-bounded-{uuid.uuid4().hex[:8]}"
    kafka_group = topic_group(group, topic.name)
    ledger = SqlDeliveryLedger(sessions, delivery_attempt)
    started: list[str] = []

    async def hangs(event: DemandWindowReported) -> None:
        started.append(event.model_id)
        await asyncio.Event().wait()  # never returns: the process is stopped in the middle of it

    first = consumer_broker(kafka_bootstrap)
    subscribe(first, topic, group, hangs, "test", retry=SMALL, ledger=ledger)
    async with running(first):
        await produce_raw(kafka_bootstrap, topic.name, [demand("poison"), demand("after")])
        assert await wait_for(lambda: started == ["poison"], timeout=30)
    assert await rows(sessions, kafka_group) == [(0, 1)]  # the delivery was counted before the handler ran
    assert await committed(kafka_bootstrap, kafka_group, topic.name) is None

    # The next process (a restart): the same record comes first; its count is at the limit.
    handled: list[str] = []
    second = consumer_broker(kafka_bootstrap)
    subscribe(second, topic, group, recording(handled), "test", retry=SMALL, ledger=ledger)
    async with running(second):
        assert await wait_for(lambda: handled == ["after"], timeout=30)
    [letter] = await letters_of(kafka_bootstrap, group, 1)
    assert letter["source_offset"] == 0
    assert letter["reason"] == "1 delivery did not finish (the consumer stopped or crashed in each)"
    assert await rows(sessions, kafka_group) == []


async def test_a_record_too_large_for_its_dead_letter_is_parked_truncated_and_the_consumer_goes_on(
    kafka_bootstrap, sessions, topic
):
    group = f"test-bounded-{uuid.uuid4().hex[:8]}"
    huge = b"\x00not json" + b"x" * (800 * 1024)  # base64 of it would not fit Kafka's 1 MB message limit
    handled: list[str] = []
    broker = consumer_broker(kafka_bootstrap)
    subscribe(
        broker,
        topic,
        group,
        recording(handled),
        "test",
        retry=SMALL,
        ledger=SqlDeliveryLedger(sessions, delivery_attempt),
    )
    async with running(broker):
        await produce_raw(kafka_bootstrap, topic.name, [huge, demand("after")])
        assert await wait_for(lambda: handled == ["after"], timeout=30)
    [letter] = await letters_of(kafka_bootstrap, group, 1)
    assert letter["reason"].startswith("invalid JSON")
    assert f"truncated to {SMALL.dead_letter_payload_max} of {len(huge)} bytes" in letter["reason"]
    assert base64.b64decode(letter["payload_b64"]) == huge[: SMALL.dead_letter_payload_max]


async def test_a_dead_letter_kafka_refuses_is_logged_with_the_records_coordinates_and_the_consumer_goes_on(
    kafka_bootstrap, sessions, topic, caplog
):
    group = f"test-bounded-{uuid.uuid4().hex[:8]}"
    huge = b"\x00not json" + b"x" * (800 * 1024)
    # No truncation: the letter (about 1.1 MB) is over the producer's limit, so every publish fails.
    untruncated = RetryPolicy(**{**SMALL.__dict__, "dead_letter_payload_max": 4 << 20})
    handled: list[str] = []
    broker = consumer_broker(kafka_bootstrap)
    ledger = SqlDeliveryLedger(sessions, delivery_attempt)
    subscribe(broker, topic, group, recording(handled), "test", retry=untruncated, ledger=ledger)
    kafka_group = topic_group(group, topic.name)
    with caplog.at_level(logging.ERROR, logger="shared.subscribe"):
        async with running(broker):
            await produce_raw(kafka_bootstrap, topic.name, [huge, demand("after")])
            assert await wait_for(lambda: handled == ["after"], timeout=30)
            assert await wait_for(lambda: _equals(committed(kafka_bootstrap, kafka_group, topic.name), 2), timeout=15)
    [error] = [record.getMessage() for record in caplog.records if record.levelno == logging.ERROR]
    assert f"could not dead-letter {topic.name}[0]@0 (consumer {kafka_group}) after 2 attempts" in error
    assert "invalid JSON" in error


async def _equals(value: Any, expected: Any) -> bool:
    return await value == expected
