"""Utilisation and monitor signals from Kafka drive decisions; metrics count them; history compacts."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from services.scaler.adapters.orm import (
    demand_window,
    inbox,
    model_placement,
    scaling_action,
    scaling_signal,
    server_utilization,
)
from shared.events import (
    ALLOCATIONS,
    DEMAND,
    SCALING_ACTIONS,
    SCALING_SIGNALS,
    SERVER_METRICS,
    ModelLoaded,
    ModelUnloaded,
    ScalingSignalRaised,
    ServerMetricsReported,
    ServerReleased,
    SignalKind,
)
from tests.integration.helpers import wait_for
from tests.integration.scaler.conftest import read_events, send, settle, steady_windows

pytestmark = pytest.mark.timeout(180)


async def count(runtime, table, model_id: str) -> int:
    async with runtime.sessions() as session:
        query = select(func.count()).select_from(table).where(table.c.model_id == model_id)
        return int((await session.execute(query)).scalar_one())


async def test_high_utilization_scales_up_a_model_the_forecast_alone_would_not(scaler, kafka_bootstrap):
    model_id = f"scaler-util-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    # 360 requests/hour: 0.36 instances of 1000, warm; two instances in us-east-1, one goes away again.
    await send(kafka_bootstrap, DEMAND.name, steady_windows(model_id, "us-east-1", 1, 24, now), key=model_id)
    servers = [f"srv-{model_id}-{i}" for i in range(3)]
    loads = [ModelLoaded(source="test", server_id=s, model_id=model_id, region="us-east-1") for s in servers]
    gone = ModelUnloaded(source="test", server_id=servers[2], model_id=model_id, region="us-east-1")
    await send(kafka_bootstrap, ALLOCATIONS.name, [*loads, gone], key=model_id)
    busy = [
        ServerMetricsReported(source="test", server_id=s, model_id=model_id, region="us-east-1", gpu_type="a100",
                              window_s=30, utilization=0.95, utilization_derived=True)
        for s in servers[:2]
    ]  # fmt: skip
    await send(kafka_bootstrap, SERVER_METRICS.name, busy, key=model_id)
    assert await wait_for(lambda: _ready(scaler.runtime, model_id), timeout=60)
    await settle()
    assert await count(scaler.runtime, model_placement, model_id) == 2

    result = await scaler.evaluate_once(now)
    assert result is not None
    actions = await read_events(kafka_bootstrap, SCALING_ACTIONS.name, model_id, want=2)
    by_region = {a["region"]: a for a in actions}
    up = by_region["us-east-1"]
    assert (up["kind"], up["current_instances"], up["target_instances"]) == ("scale_up", 2, 4)  # aggressive x2
    assert "rule=utilization_high" in up["reason"] and "utilization=0.95" in up["reason"]
    assert by_region["eu-west-1"]["kind"] == "preload"  # warm: us-east-1 and eu-west-1

    registry = scaler.runtime.registry
    assert registry.get_sample_value("llmfleet_scaler_model_tier", {"model": model_id, "tier": "warm"}) == 1.0
    assert registry.get_sample_value("llmfleet_scaler_model_tier", {"model": model_id, "tier": "hot"}) == 0.0
    rph = registry.get_sample_value("llmfleet_scaler_forecast_requests_per_hour", {"model": model_id})
    assert rph is not None and 250 < rph < 500
    ups = registry.get_sample_value("llmfleet_scaler_actions_total", {"kind": "scale_up", "rule": "utilization_high"})
    assert ups is not None and ups >= 1


async def _ready(runtime, model_id: str) -> bool:
    return (
        await count(runtime, demand_window, model_id) >= 24
        and await count(runtime, server_utilization, model_id) >= 2
        and await count(runtime, model_placement, model_id) == 2
    )


async def test_aged_history_is_compacted_to_hours_with_its_totals(scaler):
    model_id = f"scaler-old-{uuid.uuid4().hex[:8]}"
    old = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=30)
    rows = [
        {"event_id": uuid.uuid4(), "model_id": model_id, "region": "us-east-1",
         "window_start": old + timedelta(minutes=10 * i), "window_end": old + timedelta(minutes=10 * i, seconds=10),
         "requests": 7, "ok": 7, "rejected": 0, "failed": 0, "tokens_in": 70, "tokens_out": 14,
         "latency_p95_ms": 5.0 + i}
        for i in range(12)  # two hours of windows
    ]  # fmt: skip
    async with scaler.runtime.sessions.begin() as session:
        await session.execute(demand_window.insert(), rows)
    await scaler.compact_once()
    async with scaler.runtime.sessions() as session:
        query = (
            select(demand_window.c.window_start, demand_window.c.requests, demand_window.c.latency_p95_ms)
            .where(demand_window.c.model_id == model_id)
            .order_by(demand_window.c.window_start)
        )
        merged = (await session.execute(query)).all()
    assert [(r.window_start, r.requests, r.latency_p95_ms) for r in merged] == [
        (old, 42, 10.0),
        (old + timedelta(hours=1), 42, 16.0),
    ]
    await scaler.compact_once()  # again: nothing changes
    assert await count(scaler.runtime, demand_window, model_id) == 2
    assert await count(scaler.runtime, scaling_action, model_id) == 0


async def test_a_monitor_signal_about_a_server_scales_its_model_and_a_released_server_takes_its_models(
    scaler, kafka_bootstrap
):
    model_id = f"scaler-sig-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    await send(kafka_bootstrap, DEMAND.name, steady_windows(model_id, "eu-west-1", 1, 24, now), key=model_id)
    server, spare = f"srv-{model_id}", f"srv-{model_id}-spare"
    loads = [ModelLoaded(source="test", server_id=s, model_id=model_id, region="eu-west-1") for s in (server, spare)]
    released = ServerReleased(source="test", server_id=spare, region="eu-west-1")
    await send(kafka_bootstrap, ALLOCATIONS.name, [*loads, released], key=model_id)
    # No utilisation report at all: the monitor's queue signal names the server only.
    signal = ScalingSignalRaised(
        source="test", kind=SignalKind.ADD_INSTANCES, server_id=server, metric="queue_depth", value=80,
        threshold=50, factor=0.5,
    )  # fmt: skip
    await send(kafka_bootstrap, SCALING_SIGNALS.name, [signal], key=server)
    assert await wait_for(lambda: _signalled(scaler.runtime, model_id, signal.event_id), timeout=60)
    # Two loads, then the spare server released: its copy is gone with it.
    assert await wait_for(lambda: _placed(scaler.runtime, model_id, server, released.event_id), timeout=60)

    await scaler.evaluate_once(now)
    actions = await read_events(kafka_bootstrap, SCALING_ACTIONS.name, model_id, want=1)
    up = next(a for a in actions if a["region"] == "eu-west-1")
    assert (up["kind"], up["current_instances"], up["target_instances"]) == ("scale_up", 1, 2)
    assert "rule=utilization_high" in up["reason"] and "utilization=unknown" in up["reason"]


async def _signalled(runtime, model_id: str, event_id) -> bool:
    async with runtime.sessions() as session:
        seen = await session.execute(select(scaling_signal.c.event_id).where(scaling_signal.c.event_id == event_id))
        return seen.first() is not None and await count(runtime, demand_window, model_id) >= 24


async def _placed(runtime, model_id: str, server: str, last_event_id) -> bool:
    async with runtime.sessions() as session:
        applied = await session.execute(select(inbox.c.event_id).where(inbox.c.event_id == last_event_id))
        if applied.first() is None:
            return False
        query = select(model_placement.c.server_id).where(model_placement.c.model_id == model_id)
        return [row.server_id for row in await session.execute(query)] == [server]
