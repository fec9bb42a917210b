"""Alerts end to end on real Kafka and PostgreSQL: a latency breach, an overdue action, consumer lag."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from services.monitor.adapters.lag_probe import consumer_lags
from services.monitor.adapters.orm import alert_history
from shared.events import (
    ALERTS,
    ALLOCATIONS,
    DEMAND,
    SCALING_ACTIONS,
    SCALING_SIGNALS,
    AlertChanged,
    DemandWindowReported,
    ModelLoaded,
    ScalingActionOverdue,
)
from tests.integration.helpers import produce_raw, start_group_at_end, wait_for
from tests.integration.monitor.support import publish, read, running_monitor

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def window(model_id: str, end_s: int, p95: float) -> DemandWindowReported:
    end = T0 + timedelta(seconds=end_s)
    return DemandWindowReported(
        source="test", model_id=model_id, region="us-east-1", window_start=end - timedelta(seconds=30),
        window_end=end, requests=100, ok=100, tokens_in=5000, tokens_out=3000, latency_p50_ms=p95 / 3,
        latency_p95_ms=p95, latency_p99_ms=p95 * 1.2,
    )  # fmt: skip


async def test_a_latency_breach_fires_once_and_resolves_once(monitor_settings):
    model_id, bootstrap = f"model-{uuid.uuid4().hex[:8]}", monitor_settings.kafka_bootstrap
    # Event time: p95 over 3,000 ms for the rule's 60 s fires it; inside the 250 ms band keeps it;
    # under 2,750 ms resolves it. Wobbling afterwards under the threshold changes nothing.
    p95s = [(0, 3500), (30, 3600), (60, 3400), (90, 3100), (120, 2000), (150, 2900), (180, 1500)]
    async with running_monitor(monitor_settings) as monitor:
        await publish(bootstrap, DEMAND, model_id, *(window(model_id, s, p) for s, p in p95s))
        alerts = await read(bootstrap, ALERTS, {"scope.model_id": model_id}, count=2)
        assert [(a["rule"], a["state"], a["value"], a["threshold"]) for a in alerts] == [
            ("latency_p95_high", "firing", 3400.0, 3000.0),
            ("latency_p95_high", "resolved", 2000.0, 3000.0),
        ]
        assert alerts[0]["alert_id"] == alerts[1]["alert_id"]
        assert alerts[0]["scope"] == {"model_id": model_id, "region": "us-east-1"}
        async with monitor.runtime.sessions() as session:
            history = await session.execute(
                select(alert_history.c.state).where(alert_history.c.alert_id == alerts[0]["alert_id"])
            )
            assert sorted(history.scalars()) == ["firing", "resolved"]
        signals = await read(bootstrap, SCALING_SIGNALS, {"model_id": model_id}, count=1)
        # p95 over 2,500 ms asks for more servers; the cooldown keeps it to one signal.
        assert [(s["kind"], s["value"], s["target"]) for s in signals] == [("add_servers", 3500.0, 2000.0)]
        assert signals[0]["factor"] == pytest.approx(3500 / 2000 - 1)
        labels = {"model": model_id, "region": "us-east-1"}
        last = await wait_for(
            lambda: monitor.runtime.registry.get_sample_value("llmfleet_monitor_latency_p95_ms", labels) == 1500
        )
        assert last, "the exported p95 is not the last window's"


async def test_an_overdue_action_alerts_until_an_allocation_confirms_it(monitor_settings):
    action_id, bootstrap = f"act-{uuid.uuid4().hex[:8]}", monitor_settings.kafka_bootstrap
    model_id = f"model-{action_id}"
    overdue = ScalingActionOverdue(
        source="test", action_id=action_id, model_id=model_id, region="us-east-1",
        requested_at=datetime.now(UTC) - timedelta(seconds=120), waited_s=120.0,
    )  # fmt: skip
    loaded = ModelLoaded(source="test", server_id=f"srv-{action_id}", model_id=model_id, region="us-east-1",
                         action_id=action_id)  # fmt: skip
    async with running_monitor(monitor_settings):
        # No ScalingActionRequested is sent: a running allocator would act on it and confirm it.
        await publish(bootstrap, SCALING_ACTIONS, model_id, overdue)
        match = {"rule": "scaling_action_overdue", "scope.action_id": action_id}
        assert [a["state"] for a in await read(bootstrap, ALERTS, match, count=1)] == ["firing"]
        await publish(bootstrap, ALLOCATIONS, model_id, loaded)
        alerts = await read(bootstrap, ALERTS, match, count=2)
        assert [(a["state"], a["value"]) for a in alerts] == [("firing", 120.0), ("resolved", 0.0)]


async def test_consumer_lag_of_a_group_that_fell_behind(kafka_bootstrap):
    group = f"lagtest-{uuid.uuid4().hex[:8]}"
    await start_group_at_end(kafka_bootstrap, group, ALERTS.name)
    # Valid events on the monitor's own topic, so that no other service's consumer is bothered.
    note = AlertChanged(source="test", alert_id=group, rule="lag_test", severity="info", state="resolved",
                        value=0, threshold=0, scope={"group": group})  # fmt: skip
    await produce_raw(kafka_bootstrap, ALERTS.name, [note.model_dump_json().encode()] * 5, key=b"one-partition")
    lags = await consumer_lags(kafka_bootstrap, group)  # the group, and the per-topic group of the same name
    assert lags[group] == 5 and set(lags.values()) == {5}
