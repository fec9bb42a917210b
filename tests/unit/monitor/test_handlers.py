"""The monitor's handler wiring on FastStream's in-memory broker: each event reaches its use case."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from faststream.kafka import KafkaBroker, TestKafkaBroker

from services.monitor import handlers
from services.monitor.adapters.metrics import MonitorMetrics
from services.monitor.use_cases.judging import Verdict
from shared.events import ALLOCATIONS, DEMAND, PRICES, SCALING_ACTIONS, DeadLettered, Event, Topic
from shared.metrics import new_registry
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

GROUP = "llmfleet-monitor"
SETTINGS = SimpleNamespace(group_id=GROUP, service_name="monitor")
CHANGED = Verdict(signals=[sample_events.scaling_signal()])
USE_CASES = ("on_allocation_changed", "on_demand_window", "on_prices_published", "on_scaling_action_overdue")


class Wired:
    """The monitor's handlers on an in-memory broker, their use cases replaced by stand-ins."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, verdict: Verdict = CHANGED) -> None:
        # on_prices_published returns nothing; its handler ignores what it gets.
        self.cases = {name: UseCase(result=verdict) for name in USE_CASES}
        for name, case in self.cases.items():
            monkeypatch.setattr(handlers.recording, name, case)
        self.broker: KafkaBroker = wiring_broker()
        self.letters: list[DeadLettered] = dead_letters(self.broker)
        self.registry = new_registry()
        self.app = FakeApp(self.broker, SETTINGS, MonitorMetrics(self.registry))
        handlers.register(self.app)  # type: ignore[arg-type]  # a stand-in for MonitorApp


async def test_an_allocation_change_is_recorded_and_a_verdict_wakes_the_relay(monkeypatch):
    wired = Wired(monkeypatch)
    event = sample_events.model_loaded()
    async with TestKafkaBroker(wired.broker) as br:
        await publish(br, ALLOCATIONS, event)
    assert wired.cases["on_allocation_changed"].calls == [(SESSIONS, SETTINGS, "monitor.on_allocation_changed", event)]
    assert wired.app.notified == 1 and wired.letters == []


async def test_a_demand_window_is_recorded_and_its_p95_exported(monkeypatch):
    wired = Wired(monkeypatch)
    event = sample_events.demand_window(latency_p95_ms=850.0)
    async with TestKafkaBroker(wired.broker) as br:
        await publish(br, DEMAND, event)
    assert wired.cases["on_demand_window"].calls == [(SESSIONS, SETTINGS, "monitor.on_demand_window_reported", event)]
    assert wired.app.notified == 1
    labels = {"model": "m", "region": "us-east-1"}
    assert wired.registry.get_sample_value("llmfleet_monitor_latency_p95_ms", labels) == 850.0


async def test_a_verdict_with_nothing_new_does_not_wake_the_relay(monkeypatch):
    wired = Wired(monkeypatch, verdict=Verdict())
    async with TestKafkaBroker(wired.broker) as br:
        await publish(br, DEMAND, sample_events.demand_window(latency_p95_ms=None))
        await publish(br, ALLOCATIONS, sample_events.server_allocated())
    assert len(wired.cases["on_demand_window"].calls) == 1 and len(wired.cases["on_allocation_changed"].calls) == 1
    assert wired.app.notified == 0


async def test_published_prices_are_recorded(monkeypatch):
    wired = Wired(monkeypatch)
    event = sample_events.prices()
    async with TestKafkaBroker(wired.broker) as br:
        await publish(br, PRICES, event)
    assert wired.cases["on_prices_published"].calls == [(SESSIONS, "monitor.on_prices_published", event)]


async def test_an_overdue_action_is_judged_under_the_inbox_name_its_rows_carry(monkeypatch):
    wired = Wired(monkeypatch)
    event = sample_events.action_overdue()
    async with TestKafkaBroker(wired.broker) as br:
        await publish(br, SCALING_ACTIONS, event)
    assert wired.cases["on_scaling_action_overdue"].calls == [(SESSIONS, SETTINGS, "monitor.on_overdue", event)]
    assert wired.app.notified == 1


@pytest.mark.parametrize(
    "event",
    [sample_events.action_requested(), sample_events.capacity_change()],
    ids=lambda event: type(event).__name__,
)
async def test_the_other_events_of_the_actions_topic_are_not_the_monitors(monkeypatch, event: Event):
    wired = Wired(monkeypatch)
    async with TestKafkaBroker(wired.broker) as br:
        await publish(br, SCALING_ACTIONS, event)
    assert not any(case.calls for case in wired.cases.values()) and wired.letters == []


@pytest.mark.parametrize("topic", [ALLOCATIONS, DEMAND, PRICES, SCALING_ACTIONS], ids=lambda t: t.name)
async def test_an_unreadable_message_is_dead_lettered(monkeypatch, topic: Topic):
    wired = Wired(monkeypatch)
    async with TestKafkaBroker(wired.broker) as br:
        await publish_unreadable(br, topic)
    assert_dead_lettered(wired.letters, topic, consumer=GROUP, source="monitor")
    assert not any(case.calls for case in wired.cases.values())
