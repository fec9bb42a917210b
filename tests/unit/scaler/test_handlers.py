"""The scaler's handler wiring on FastStream's in-memory broker: each event reaches its use case."""

from __future__ import annotations

from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from faststream.kafka import KafkaBroker, TestKafkaBroker

from services.scaler import handlers
from services.scaler.domain.backoff import BackoffPolicy
from services.scaler.domain.policy import PolicyName
from shared.events import (
    ALLOCATIONS,
    DEMAND,
    MODEL_REQUESTS,
    SCALING_SIGNALS,
    SERVER_METRICS,
    AllocationFailed,
    DeadLettered,
    Event,
    ScalingActionRequested,
    Topic,
)
from tests.support import sample_events
from tests.support.wiring import (
    SESSIONS,
    FakeApp,
    UseCase,
    assert_dead_lettered,
    dead_letters,
    publish,
    publish_unreadable,
    wiring_broker,
)

GROUP = "llmfleet-scaler"
BACKOFF = BackoffPolicy(timedelta(seconds=30), timedelta(minutes=30), 3)
SUBSCRIBED = (DEMAND, SERVER_METRICS, SCALING_SIGNALS, MODEL_REQUESTS, ALLOCATIONS)


class FakeScalerApp(FakeApp):
    """What `register` uses of `ScalerApp`: runtime, settings (the policy), metrics that count actions, relay."""

    def __init__(self, broker: KafkaBroker) -> None:
        self.counted: list[ScalingActionRequested] = []
        self.refused: list[tuple[str, str]] = []
        settings = SimpleNamespace(
            group_id=GROUP, service_name="scaler", policy=PolicyName.CONSERVATIVE, backoff=BACKOFF
        )
        metrics = SimpleNamespace(action=self.counted.append, refused=lambda *key: self.refused.append(key))
        super().__init__(broker, settings, metrics)


class Wired:
    """The scaler's handlers on an in-memory broker, their use cases replaced by stand-ins."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, cold_start: Any = None) -> None:
        self.cases = {
            name: UseCase()
            for name in ("record_demand_window", "record_server_metrics", "record_signal", "record_allocation")
        }
        for name, case in self.cases.items():
            monkeypatch.setattr(handlers.recording, name, case)
        self.cases["request_cold_start"] = UseCase(result=cold_start)
        monkeypatch.setattr(handlers.cold_starts, "request_cold_start", self.cases["request_cold_start"])
        self.broker: KafkaBroker = wiring_broker()
        self.letters: list[DeadLettered] = dead_letters(self.broker)
        self.app = FakeScalerApp(self.broker)
        handlers.register(self.app)  # type: ignore[arg-type]  # a stand-in for ScalerApp

    def only_call(self, name: str) -> tuple[Any, ...]:
        """The arguments of the one use-case call there was, which must be `name`'s."""
        made = {case_name: case.calls for case_name, case in self.cases.items() if case.calls}
        assert list(made) == [name] and len(made[name]) == 1, made
        return made[name][0]


@pytest.mark.parametrize(
    ("topic", "event", "use_case", "inbox"),
    [
        (DEMAND, sample_events.demand_window(), "record_demand_window", "scaler.on_demand_window_reported"),
        (SERVER_METRICS, sample_events.server_metrics(), "record_server_metrics", "scaler.on_server_metrics_reported"),
        (SCALING_SIGNALS, sample_events.scaling_signal(), "record_signal", "scaler.on_scaling_signal_raised"),
    ],
    ids=lambda value: value.name if isinstance(value, Topic) else None,
)
async def test_each_observation_is_recorded_under_its_handlers_inbox_name(
    monkeypatch, topic: Topic, event: Event, use_case: str, inbox: str
):
    wired = Wired(monkeypatch)
    async with TestKafkaBroker(wired.broker) as br:
        await publish(br, topic, event)
    assert wired.only_call(use_case) == (SESSIONS, inbox, event)
    assert wired.letters == []


async def test_an_allocation_change_is_recorded_with_the_time_it_was_seen(monkeypatch):
    wired = Wired(monkeypatch)
    event = sample_events.server_allocated()
    async with TestKafkaBroker(wired.broker) as br:
        await publish(br, ALLOCATIONS, event)
    sessions, inbox, seen, now, backoff = wired.only_call("record_allocation")
    assert (sessions, inbox, seen, backoff) == (SESSIONS, "scaler.on_allocation_changed", event, BACKOFF)
    assert isinstance(now, datetime) and now.tzinfo is not None


@pytest.mark.parametrize("applied", [True, False], ids=["first", "redelivered"])
async def test_a_refusal_is_counted_and_wakes_the_relay_only_when_applied(monkeypatch, applied: bool):
    wired = Wired(monkeypatch)
    wired.cases["record_allocation"].result = applied
    event = AllocationFailed(source="allocator", model_id="m", region="us-east-1", reason="no GPUs")
    async with TestKafkaBroker(wired.broker) as br:
        await publish(br, ALLOCATIONS, event)
    assert wired.app.refused == ([("m", "us-east-1")] if applied else [])
    assert wired.app.notified == (1 if applied else 0)


async def test_a_model_request_asks_for_a_cold_start_under_the_policy_and_announces_it(monkeypatch):
    action = sample_events.action_requested()
    wired = Wired(monkeypatch, cold_start=action)
    event = sample_events.model_requested()
    async with TestKafkaBroker(wired.broker) as br:
        await publish(br, MODEL_REQUESTS, event)
    sessions, inbox, seen, policy, now, action_id, backoff = wired.only_call("request_cold_start")
    assert backoff == BACKOFF
    assert (sessions, inbox, seen, policy) == (SESSIONS, "scaler.on_model_requested", event, "conservative")
    assert now.tzinfo is not None and isinstance(action_id, str) and action_id
    assert wired.app.counted == [action] and wired.app.notified == 1


async def test_a_model_request_that_needs_no_cold_start_announces_nothing(monkeypatch):
    wired = Wired(monkeypatch, cold_start=None)
    async with TestKafkaBroker(wired.broker) as br:
        await publish(br, MODEL_REQUESTS, sample_events.model_requested())
    wired.only_call("request_cold_start")
    assert wired.app.counted == [] and wired.app.notified == 0


@pytest.mark.parametrize("topic", SUBSCRIBED, ids=lambda t: t.name)
async def test_an_unreadable_message_is_dead_lettered(monkeypatch, topic: Topic):
    wired = Wired(monkeypatch)
    async with TestKafkaBroker(wired.broker) as br:
        await publish_unreadable(br, topic)
    assert_dead_lettered(wired.letters, topic, consumer=GROUP, source="scaler")
    assert not any(case.calls for case in wired.cases.values())
