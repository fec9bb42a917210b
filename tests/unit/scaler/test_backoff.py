"""The pure backoff policy: how long the scaler waits after refusals, what it holds back, when it alerts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from services.scaler.domain.backoff import (
    BackoffPolicy,
    Refusals,
    alert_id,
    alert_message,
    delay,
    held_back,
    may_ask,
    refused,
    retry_at,
)
from services.scaler.domain.planner import PlannedAction
from services.scaler.domain.tiers import Tier
from shared.events import ActionKind

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
POLICY = BackoffPolicy(base=timedelta(seconds=30), cap=timedelta(seconds=300), alert_after=3)


def refusals(count: int, at: datetime = NOW) -> Refusals:
    return Refusals(count, at, "no GPUs")


def action(kind: ActionKind, region: str = "us-east-1") -> PlannedAction:
    return PlannedAction("m", region, kind, 1, 2, "high", "rule", "aggressive", Tier.WARM)


def test_the_wait_doubles_with_each_refusal_in_a_row_up_to_the_cap():
    waits = [delay(k, POLICY).total_seconds() for k in range(1, 7)]
    assert waits == [30, 60, 120, 240, 300, 300]
    assert delay(0, POLICY) == timedelta(0)


def test_a_very_long_run_of_refusals_waits_the_cap_and_does_not_overflow():
    assert delay(10_000, POLICY) == POLICY.cap


@given(st.integers(min_value=1, max_value=500))
def test_the_wait_never_shrinks_as_refusals_grow_and_never_passes_the_cap(count: int):
    assert delay(count, POLICY) <= delay(count + 1, POLICY) <= POLICY.cap


def test_a_capacity_ask_waits_until_the_backoff_has_passed():
    second = refusals(2)  # waits 60 s
    assert retry_at(second, POLICY) == NOW + timedelta(seconds=60)
    for kind in (ActionKind.SCALE_UP, ActionKind.PRELOAD):
        assert not may_ask(second, kind, NOW + timedelta(seconds=59), POLICY)
        assert may_ask(second, kind, NOW + timedelta(seconds=60), POLICY)


def test_scale_downs_and_unloads_are_never_held_back():
    for kind in (ActionKind.SCALE_DOWN, ActionKind.UNLOAD):
        assert may_ask(refusals(5), kind, NOW, POLICY)


def test_without_refusals_every_ask_may_go_out():
    assert may_ask(None, ActionKind.SCALE_UP, NOW, POLICY)


def test_only_the_refused_regions_capacity_asks_are_held_back():
    up_here, down_here, up_elsewhere = (
        action(ActionKind.SCALE_UP),
        action(ActionKind.SCALE_DOWN),
        action(ActionKind.PRELOAD, "eu-west-1"),
    )
    waiting = held_back([up_here, down_here, up_elsewhere], {("m", "us-east-1"): refusals(1)}, NOW, POLICY)
    assert waiting == [up_here]


def test_the_alert_fires_once_at_the_threshold_and_stays_fired():
    state, fired = None, []
    for k in range(1, 6):
        at = NOW + timedelta(minutes=k)
        state, fires = refused(state, f"no GPUs #{k}", at, POLICY)
        fired.append(fires)
        assert (state.count, state.last_at, state.last_reason) == (k, at, f"no GPUs #{k}")
    assert fired == [False, False, True, False, False]
    assert state is not None and state.alert_fired_at == NOW + timedelta(minutes=3)


def test_the_alert_names_the_model_the_region_and_the_last_reason():
    message = alert_message("llama-7b", "eu-west-1", Refusals(3, NOW, "server cap 6 reached"))
    assert message.startswith("capacity exhausted for llama-7b in eu-west-1")
    assert "server cap 6 reached" in message
    assert alert_id("llama-7b", "eu-west-1", NOW) != alert_id("llama-7b", "us-east-1", NOW)
