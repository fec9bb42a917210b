"""The delivery contract on real Kafka and PostgreSQL: inbox dedupe and dead letters."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from services.scaler.adapters.orm import demand_window, inbox
from services.scaler.app import create_app, migrate
from services.scaler.settings import ScalerSettings
from shared.events import ALL_TOPICS, DEADLETTER, DEMAND, DemandWindowReported
from tests.integration.helpers import collect, produce_raw, running, start_group_at_end, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def scaler_settings(kafka_bootstrap: str, database_url) -> ScalerSettings:
    settings = ScalerSettings(
        kafka_bootstrap=kafka_bootstrap,
        database_url=database_url("scaler"),
        consumer_group=f"test-scaler-{uuid.uuid4().hex[:8]}",
    )
    migrate(settings)
    # Only this test's messages: not the history other tests left on the shared broker.
    asyncio.run(start_group_at_end(kafka_bootstrap, settings.group_id, *(topic.name for topic in ALL_TOPICS)))
    return settings


def demand_event(model_id: str) -> DemandWindowReported:
    start = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    return DemandWindowReported(
        source="test",
        model_id=model_id,
        region="us-east-1",
        window_start=start,
        window_end=start + timedelta(seconds=10),
        requests=42,
        ok=40,
        rejected=1,
        failed=1,
        tokens_in=4200,
        tokens_out=900,
        latency_p95_ms=812.5,
    )


async def rows_for(runtime, model_id: str) -> int:
    async with runtime.sessions() as session:
        query = select(func.count()).select_from(demand_window).where(demand_window.c.model_id == model_id)
        return int((await session.execute(query)).scalar_one())


async def test_event_is_stored_once_even_when_delivered_twice(scaler_settings, kafka_bootstrap):
    model_id = f"model-{uuid.uuid4().hex[:8]}"
    event = demand_event(model_id)
    runtime = create_app(scaler_settings)[1].runtime
    async with running(runtime.broker):
        await produce_raw(kafka_bootstrap, DEMAND.name, [event.model_dump_json().encode()], key=model_id.encode())
        assert await wait_for(lambda: rows_for(runtime, model_id), timeout=30) == 1
        # The same event again, as Kafka does after a crash before the offset commit.
        await produce_raw(kafka_bootstrap, DEMAND.name, [event.model_dump_json().encode()], key=model_id.encode())
        marker = demand_event(model_id)  # a later event on the same partition proves the duplicate was read
        await produce_raw(kafka_bootstrap, DEMAND.name, [marker.model_dump_json().encode()], key=model_id.encode())
        assert await wait_for(lambda: _at_least(runtime, model_id, 2), timeout=30)
        await asyncio.sleep(0.5)
        assert await rows_for(runtime, model_id) == 2
        async with runtime.sessions() as session:
            seen = await session.execute(
                select(func.count()).select_from(inbox).where(inbox.c.event_id == event.event_id)
            )
            assert seen.scalar_one() == 1
    await runtime.close()


async def _at_least(runtime, model_id: str, count: int) -> bool:
    return await rows_for(runtime, model_id) >= count


async def test_unreadable_messages_are_dead_lettered_and_consumption_goes_on(scaler_settings, kafka_bootstrap):
    model_id = f"model-{uuid.uuid4().hex[:8]}"
    not_json = f"{{this is not json {model_id}".encode()
    invalid = json.dumps({"source": "test", "model_id": model_id, "requests": -5}).encode()
    good = demand_event(model_id)
    runtime = create_app(scaler_settings)[1].runtime
    group = scaler_settings.group_id
    async with running(runtime.broker):
        await produce_raw(
            kafka_bootstrap, DEMAND.name, [not_json, invalid, good.model_dump_json().encode()], key=model_id.encode()
        )
        assert await wait_for(lambda: rows_for(runtime, model_id), timeout=30) == 1

    def letters_of_group(records):
        letters = (json.loads(record.value) for record in records)
        return [
            x for x in letters if x["consumer"] == group and model_id.encode() in base64.b64decode(x["payload_b64"])
        ]

    records = await collect(kafka_bootstrap, DEADLETTER.name, lambda rs: len(letters_of_group(rs)) >= 2)
    letters = letters_of_group(records)
    assert len(letters) == 2
    by_payload = {base64.b64decode(letter["payload_b64"]): letter for letter in letters}
    assert by_payload[not_json]["reason"].startswith("invalid JSON")
    assert by_payload[invalid]["reason"].startswith("validation failed")
    assert "requests" in by_payload[invalid]["reason"]
    assert all(letter["source_topic"] == DEMAND.name for letter in letters)
    offsets = sorted(letter["source_offset"] for letter in letters)
    assert offsets[1] == offsets[0] + 1
    await runtime.close()
