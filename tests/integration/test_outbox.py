"""The outbox on real PostgreSQL and Kafka: only committed events go out, each once per relay."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime

import pytest

from services.scaler.adapters.orm import outbox
from services.scaler.app import migrate
from services.scaler.settings import ScalerSettings
from shared.broker import create_broker
from shared.db import create_engine, session_factory
from shared.events import FORECASTS, DemandForecasted
from shared.outbox import OutboxRelay, add_to_outbox
from shared.telemetry import create_tracer_provider
from tests.integration.helpers import collect

pytestmark = pytest.mark.integration


def forecast(model_id: str) -> DemandForecasted:
    return DemandForecasted(
        source="test", model_id=model_id, horizon_start=datetime.now(UTC), requests_per_hour=[120.0], confidence=0.9
    )


async def test_only_committed_events_are_relayed_and_only_once(kafka_bootstrap, database_url):
    url = database_url("scaler")
    await asyncio.to_thread(migrate, ScalerSettings(database_url=url))
    engine = create_engine(url, "scaler")
    sessions = session_factory(engine)
    model_id = f"model-{uuid.uuid4().hex[:8]}"
    kept, dropped = forecast(model_id), forecast(model_id)

    async with sessions.begin() as session:
        await add_to_outbox(session, outbox, FORECASTS, kept, key=model_id)
    with pytest.raises(RuntimeError):
        async with sessions.begin() as session:
            await add_to_outbox(session, outbox, FORECASTS, dropped, key=model_id)
            raise RuntimeError("the state change failed, so its event must not go out")

    broker = create_broker(kafka_bootstrap, "test-outbox", create_tracer_provider("test"))
    relay = OutboxRelay(sessions, outbox, broker)
    async with broker:
        await broker.connect()
        assert await relay.publish_pending() >= 1
        assert await relay.publish_pending() == 0

    def mine(records):
        return [json.loads(r.value) for r in records if json.loads(r.value)["model_id"] == model_id]

    assert mine(await collect(kafka_bootstrap, FORECASTS.name, lambda rs: len(mine(rs)) >= 1))
    # Read the whole topic once more after a pause: exactly one copy of the committed event.
    everything = await collect(kafka_bootstrap, FORECASTS.name, lambda rs: False, timeout=3.0)
    assert [event["event_id"] for event in mine(everything)] == [str(kept.event_id)]
    await engine.dispose()
