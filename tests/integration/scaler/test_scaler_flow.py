"""Demand on Kafka -> forecasts and scaling actions on Kafka; cold starts; confirmations; overdue actions."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from services.scaler.adapters.orm import demand_window, scaling_action
from services.scaler.adapters.repository import scaler_store
from services.scaler.domain.planner import cold_start
from shared.events import (
    ALLOCATIONS,
    DEMAND,
    FORECASTS,
    MODEL_REQUESTS,
    SCALING_ACTIONS,
    ModelLoaded,
    ModelRequested,
)
from tests.integration.helpers import wait_for
from tests.integration.scaler.conftest import read_events, send, settle, steady_windows

pytestmark = pytest.mark.timeout(180)


async def demand_of(runtime, model_id: str) -> tuple[int, int]:
    async with runtime.sessions() as session:
        query = select(func.count(), func.coalesce(func.sum(demand_window.c.requests), 0)).where(
            demand_window.c.model_id == model_id
        )
        count, total = (await session.execute(query)).one()
        return int(count), int(total)


async def actions_of(runtime, model_id: str) -> list:
    async with runtime.sessions() as session:
        query = select(scaling_action).where(scaling_action.c.model_id == model_id).order_by(scaling_action.c.region)
        return list((await session.execute(query)).all())


async def test_demand_windows_lead_to_a_forecast_and_a_scale_up(scaler, kafka_bootstrap):
    model_id = f"scaler-m-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    windows = steady_windows(model_id, "us-east-1", per_window=5, buckets=24, now=now)  # 1800 requests/hour
    await send(kafka_bootstrap, DEMAND.name, windows, key=model_id)
    loaded = ModelLoaded(source="test", server_id=f"srv-{model_id}", model_id=model_id, region="us-east-1")
    await send(kafka_bootstrap, ALLOCATIONS.name, [loaded], key=model_id)
    assert await wait_for(lambda: _has(scaler.runtime, model_id, 24), timeout=60)
    await settle()  # the placement arrives on another topic

    result = await scaler.evaluate_once(now)
    assert result is not None
    forecasts = await read_events(kafka_bootstrap, FORECASTS.name, model_id, want=1)
    assert forecasts and forecasts[0]["region"] == "us-east-1"
    assert forecasts[0]["confidence"] > 0.9
    assert 1500 < forecasts[0]["requests_per_hour"][0] < 2100  # 5 per 10 s
    assert set(forecasts[0]["predictors"]) == {"holt_winters", "seasonal", "ridge", "tsb"}
    assert (forecasts[0]["bucket_s"], forecasts[0]["tier"]) == (10, "hot")

    # 1800 req/h needs 1.8 instances of 1000 > 1.2 x 1: scale up; hot (> 1000/h): preload two more regions.
    actions = await read_events(kafka_bootstrap, SCALING_ACTIONS.name, model_id, want=3)
    by_region = {a["region"]: a for a in actions}
    assert by_region["us-east-1"]["kind"] == "scale_up"
    assert by_region["us-east-1"]["target_instances"] == 2
    assert "rule=forecast_above_capacity" in by_region["us-east-1"]["reason"]
    assert "policy=aggressive" in by_region["us-east-1"]["reason"]
    assert (by_region["us-east-1"]["rule"], by_region["us-east-1"]["policy"]) == (
        "forecast_above_capacity",
        "aggressive",
    )
    assert by_region["us-east-1"]["inputs"]["required"] == pytest.approx(1.8, abs=0.2)
    assert {by_region[r]["kind"] for r in ("eu-west-1", "ap-southeast-1")} == {"preload"}
    rows = await actions_of(scaler.runtime, model_id)
    # Recorded with its inputs (an allocator on the shared broker may already have answered it).
    recorded = next(r for r in rows if r.action_id == by_region["us-east-1"]["action_id"])
    assert (recorded.rule, recorded.policy, recorded.tier) == ("forecast_above_capacity", "aggressive", "hot")
    assert recorded.confidence > 0.9 and 1500 < recorded.forecast_rph < 2100 and recorded.utilization is None

    # Redelivered windows change nothing: same rows, same totals, and no new action (one is pending).
    before = await demand_of(scaler.runtime, model_id)
    await send(kafka_bootstrap, DEMAND.name, windows, key=model_id)
    marker = steady_windows(model_id, "eu-west-1", per_window=1, buckets=1, now=now)
    await send(kafka_bootstrap, DEMAND.name, marker, key=model_id)
    assert await wait_for(lambda: _has(scaler.runtime, model_id, 25), timeout=60)
    await settle()
    assert await demand_of(scaler.runtime, model_id) == (before[0] + 1, before[1] + 1)


async def _has(runtime, model_id: str, rows: int) -> bool:
    return (await demand_of(runtime, model_id))[0] >= rows


async def test_cold_start_preloads_once_and_the_allocator_confirms(scaler, kafka_bootstrap):
    model_id = f"scaler-cold-{uuid.uuid4().hex[:8]}"
    request = ModelRequested(source="test", model_id=model_id, region="eu-west-1", pending_requests=3)
    again = ModelRequested(source="test", model_id=model_id, region="eu-west-1", pending_requests=7)
    await send(kafka_bootstrap, MODEL_REQUESTS.name, [request, request, again], key=model_id)
    actions = await read_events(kafka_bootstrap, SCALING_ACTIONS.name, model_id, want=1)
    assert len(actions) == 1
    action = actions[0]
    assert (action["kind"], action["priority"], action["target_instances"]) == ("preload", "high", 1)
    assert "rule=cold_start" in action["reason"] and "pending_requests=3" in action["reason"]
    await settle()
    assert len(await actions_of(scaler.runtime, model_id)) == 1  # the redelivery and the second request added none

    loaded = ModelLoaded(
        source="test", server_id=f"srv-{model_id}", model_id=model_id, region="eu-west-1", action_id=action["action_id"]
    )
    await send(kafka_bootstrap, ALLOCATIONS.name, [loaded], key=model_id)
    assert await wait_for(lambda: _status(scaler.runtime, model_id, "confirmed"), timeout=60)


async def _status(runtime, model_id: str, status: str) -> bool:
    return any(row.status == status for row in await actions_of(runtime, model_id))


async def test_an_unconfirmed_action_is_reported_overdue(scaler, kafka_bootstrap, scaler_settings):
    model_id = f"scaler-late-{uuid.uuid4().hex[:8]}"
    # Recorded directly, not published: no allocator on the shared broker can answer it.
    requested_at = datetime.now(UTC)
    action = cold_start(model_id, "us-east-1", instances=0, pending=False, policy="aggressive")
    assert action is not None
    async with scaler_store(scaler.runtime.sessions).transaction() as repo:
        await repo.save_action(action, f"late-{model_id}", requested_at)

    later = requested_at + timedelta(seconds=scaler_settings.action_timeout_s + 1)
    result = await scaler.evaluate_once(later)
    assert result is not None and [e.action_id for e in result.overdue if e.model_id == model_id] == [
        f"late-{model_id}"
    ]
    events = await read_events(kafka_bootstrap, SCALING_ACTIONS.name, model_id, want=1)
    assert [e["type"] for e in events] == ["scaling_action_overdue"]
    assert events[0]["waited_s"] == pytest.approx(scaler_settings.action_timeout_s + 1, abs=0.01)
    assert await _status(scaler.runtime, model_id, "overdue")
    overdue = scaler.runtime.registry.get_sample_value("llmfleet_scaler_actions_overdue_total")
    assert overdue is not None and overdue >= 1
