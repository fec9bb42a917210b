"""The allocator's refusals on the real Kafka and Postgres: counted in `allocation_backoff`, a cold start held
back, 'capacity exhausted' on fleet.alerts.v1 at the third, resolved when the model loads."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import select

from services.scaler.adapters.orm import allocation_backoff, inbox, scaling_action
from shared.events import (
    ALERTS,
    ALLOCATIONS,
    MODEL_REQUESTS,
    SCALING_ACTIONS,
    AllocationFailed,
    ModelLoaded,
    ModelRequested,
)
from tests.integration.helpers import collect, wait_for
from tests.integration.scaler.conftest import read_events, send

pytestmark = pytest.mark.timeout(180)
REGION = "us-east-1"


async def alerts_for(bootstrap: str, model_id: str, want: int) -> list[dict]:
    """`AlertChanged` events on fleet.alerts.v1 about `model_id`, once `want` are there."""

    def mine(records):
        return [e for e in (json.loads(r.value) for r in records) if e.get("scope", {}).get("model_id") == model_id]

    return mine(await collect(bootstrap, ALERTS.name, lambda rs: len(mine(rs)) >= want, timeout=45))


async def backoff_row(runtime, model_id: str):
    async with runtime.sessions() as session:
        query = select(allocation_backoff).where(allocation_backoff.c.model_id == model_id)
        return (await session.execute(query)).first()


async def seen(runtime, event_id: uuid.UUID) -> bool:
    async with runtime.sessions() as session:
        return (await session.execute(select(inbox.c.event_id).where(inbox.c.event_id == event_id))).first() is not None


async def test_refusals_back_off_alert_once_and_a_load_resolves(scaler, kafka_bootstrap):
    model_id = f"scaler-refused-{uuid.uuid4().hex[:8]}"
    first = ModelRequested(source="test", model_id=model_id, region=REGION, pending_requests=1)
    await send(kafka_bootstrap, MODEL_REQUESTS.name, [first], key=model_id)
    (action,) = await read_events(kafka_bootstrap, SCALING_ACTIONS.name, model_id, want=1)

    refusals = [
        AllocationFailed(source="allocator", model_id=model_id, region=REGION, reason=f"server cap reached ({k})",
                         action_id=action["action_id"] if k == 1 else None)
        for k in (1, 2, 3)
    ]  # fmt: skip
    await send(kafka_bootstrap, ALLOCATIONS.name, refusals, key=model_id)
    (firing,) = await alerts_for(kafka_bootstrap, model_id, want=1)
    assert (firing["state"], firing["rule"], firing["scope"]) == (
        "firing", "capacity_exhausted", {"model_id": model_id, "region": REGION},
    )  # fmt: skip
    assert f"capacity exhausted for {model_id} in {REGION}" in firing["message"]
    assert "server cap reached (3)" in firing["message"]
    row = await backoff_row(scaler.runtime, model_id)
    assert row is not None and row.refusals == 3 and row.alert_fired_at is not None

    # Inside the backoff (120 s after the third refusal) a new cold-start request asks for nothing.
    again = ModelRequested(source="test", model_id=model_id, region=REGION, pending_requests=5)
    await send(kafka_bootstrap, MODEL_REQUESTS.name, [again], key=model_id)
    assert await wait_for(lambda: seen(scaler.runtime, again.event_id), timeout=60)
    async with scaler.runtime.sessions() as session:
        rows = (await session.execute(select(scaling_action).where(scaling_action.c.model_id == model_id))).all()
    assert [r.status for r in rows] == ["failed"]

    loaded = ModelLoaded(source="allocator", server_id=f"srv-{model_id}", model_id=model_id, region=REGION)
    await send(kafka_bootstrap, ALLOCATIONS.name, [loaded], key=model_id)
    alerts = await alerts_for(kafka_bootstrap, model_id, want=2)
    assert [(a["state"], a["alert_id"]) for a in alerts] == [
        ("firing", firing["alert_id"]), ("resolved", firing["alert_id"])
    ]  # fmt: skip
    assert await backoff_row(scaler.runtime, model_id) is None
    counted = scaler.runtime.registry.get_sample_value(
        "llmfleet_scaler_allocation_refusals_total", {"model": model_id, "region": REGION}
    )
    assert counted == 3
