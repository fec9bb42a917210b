"""The allocator's refusals as feedback, on the fake store: backoff of cold starts and evaluation rounds,
the 'capacity exhausted' alert, and the reset on a success."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime, timedelta

from services.scaler.use_cases import cold_starts, recording
from shared.events import (
    ALERTS,
    SCALING_ACTIONS,
    ActionKind,
    AlertChanged,
    AlertState,
    AllocationFailed,
    ModelRequested,
    ScalingActionRequested,
)
from tests.unit.scaler.fakes import FakeScalerStore
from tests.unit.scaler.test_use_cases import CONSUMER, NOW, SETTINGS, busy_model, evaluate, loaded

BASE = timedelta(seconds=SETTINGS.refusal_backoff_s)
REQUEST = ModelRequested(source="router", model_id="m", region="us-east-1", pending_requests=2)


async def ask(store: FakeScalerStore, at: datetime) -> ScalingActionRequested | None:
    """A fresh cold-start request for m in us-east-1 at `at`."""
    request = REQUEST.model_copy(update={"event_id": uuid.uuid4()})
    return await cold_starts.request_cold_start(
        store, CONSUMER, request, "aggressive", at, uuid.uuid4().hex, SETTINGS.backoff
    )


async def refuse(store: FakeScalerStore, action_id: str | None, at: datetime, reason: str = "no GPUs") -> None:
    failed = AllocationFailed(source="allocator", model_id="m", region="us-east-1", reason=reason, action_id=action_id)
    assert await recording.record_allocation(store, CONSUMER, failed, at, SETTINGS.backoff)


def alerts(store: FakeScalerStore) -> list[AlertChanged]:
    return [e for e in store.state.announced(ALERTS) if isinstance(e, AlertChanged)]


async def test_after_a_refusal_a_cold_start_waits_the_backoff_and_the_wait_doubles():
    store = FakeScalerStore()
    first = await ask(store, NOW)
    assert first is not None
    await refuse(store, first.action_id, NOW)
    assert await ask(store, NOW + BASE - timedelta(seconds=1)) is None  # inside the first backoff
    second = await ask(store, NOW + BASE)
    assert second is not None

    await refuse(store, second.action_id, NOW + BASE)
    assert await ask(store, NOW + 3 * BASE - timedelta(seconds=1)) is None  # the second wait is 2 * base
    assert await ask(store, NOW + 3 * BASE) is not None
    assert len(store.state.announced(SCALING_ACTIONS)) == 3


async def test_a_redelivered_refusal_counts_once():
    store = FakeScalerStore()
    failed = AllocationFailed(source="allocator", model_id="m", region="us-east-1", reason="no GPUs")
    for _ in range(2):
        await recording.record_allocation(store, CONSUMER, failed, NOW, SETTINGS.backoff)
    assert store.state.refusals[("m", "us-east-1")].count == 1


async def test_the_capacity_alert_fires_once_at_the_threshold_and_resolves_on_a_load():
    store = FakeScalerStore()
    for k in range(SETTINGS.refusal_alert_after + 1):
        await refuse(store, None, NOW + timedelta(minutes=k), reason=f"server cap reached ({k})")
    (firing,) = alerts(store)
    assert (firing.state, firing.rule, firing.scope) == (
        AlertState.FIRING, "capacity_exhausted", {"model_id": "m", "region": "us-east-1"},
    )  # fmt: skip
    assert "capacity exhausted for m in us-east-1" in firing.message and "server cap reached (2)" in firing.message
    assert firing.value == SETTINGS.refusal_alert_after

    loaded_at = NOW + timedelta(hours=1)
    assert await recording.record_allocation(
        store, CONSUMER, loaded("m", "us-east-1", "s1"), loaded_at, SETTINGS.backoff
    )
    resolved = alerts(store)[1:]
    assert [(a.state, a.alert_id) for a in resolved] == [(AlertState.RESOLVED, firing.alert_id)]
    assert store.state.refusals == {}  # the backoff is reset: the next refusal is the first again

    await refuse(store, None, loaded_at)
    assert store.state.refusals[("m", "us-east-1")].count == 1 and len(alerts(store)) == 2


async def test_a_load_elsewhere_resets_nothing_here():
    store = FakeScalerStore()
    await refuse(store, None, NOW)
    await recording.record_allocation(store, CONSUMER, loaded("m", "eu-west-1", "s1"), NOW, SETTINGS.backoff)
    await recording.record_allocation(store, CONSUMER, loaded("other", "us-east-1", "s2"), NOW, SETTINGS.backoff)
    assert store.state.refusals[("m", "us-east-1")].count == 1


async def test_a_refused_scale_down_does_not_count_as_capacity_running_out():
    store = FakeScalerStore()
    await busy_model(store)
    await evaluate(store)  # a scale-up in us-east-1 and preloads elsewhere; the first made a scale-down here
    action_id, row = next((i, r) for i, r in store.state.actions.items() if r.action.region == "us-east-1")
    row.action = replace(row.action, kind=ActionKind.SCALE_DOWN, target=0)
    await refuse(store, action_id, NOW)
    assert store.state.refusals == {} and store.state.statuses("m")["us-east-1"] == "failed"


async def test_an_evaluation_holds_back_a_refused_scale_up_until_the_backoff_has_passed():
    store = FakeScalerStore()
    await busy_model(store)
    first = await evaluate(store)
    up = next(a for a in first.actions if a.region == "us-east-1")
    assert up.kind is ActionKind.SCALE_UP
    # Refused so that the backoff ends one second after NOW (the rounds stay in NOW's bucket).
    await refuse(store, up.action_id, NOW - BASE + timedelta(seconds=1))

    # The preloads of the other regions are still pending; only us-east-1 could be asked again.
    held = await evaluate(store, NOW)
    assert held.actions == [] and [(a.region, a.kind) for a in held.held_back] == [("us-east-1", ActionKind.SCALE_UP)]
    after = await evaluate(store, NOW + timedelta(seconds=1))
    assert [(a.region, a.kind) for a in after.actions] == [("us-east-1", ActionKind.SCALE_UP)]
    assert after.held_back == []
