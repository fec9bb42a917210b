"""The cost service's handler wiring on FastStream's in-memory broker: each event reaches its use case."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from faststream.kafka import KafkaBroker, TestKafkaBroker

from services.cost import handlers
from shared.events import ALLOCATIONS, COST_REPORTS, DEMAND, FORECASTS, SERVER_METRICS, DeadLettered, Event, Topic
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

GROUP = "llmfleet-cost"
SUBSCRIBED = (ALLOCATIONS, SERVER_METRICS, DEMAND, FORECASTS, COST_REPORTS)


class FakeCostApp(FakeApp):
    """What `register` uses of `CostApp`: the runtime and settings, a cycle context, `reflect`."""

    def __init__(self, broker: KafkaBroker) -> None:
        super().__init__(broker, SimpleNamespace(group_id=GROUP, service_name="cost"))
        self.reflected: list[Any] = []

    def context(self, trigger: str = "schedule", requested_by: str | None = None) -> tuple[str, str | None]:
        return (trigger, requested_by)

    def reflect(self, result: Any, started: float) -> None:
        self.reflected.append(result)


class Wired:
    """The cost handlers on an in-memory broker, their use cases replaced by stand-ins."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.record = UseCase()
        self.report_on_request = UseCase(result="report")
        monkeypatch.setattr(handlers.recording, "record", self.record)
        monkeypatch.setattr(handlers.reporting, "report_on_request", self.report_on_request)
        self.broker: KafkaBroker = wiring_broker()
        self.letters: list[DeadLettered] = dead_letters(self.broker)
        self.app = FakeCostApp(self.broker)
        handlers.register(self.app)  # type: ignore[arg-type]  # a stand-in for CostApp


@pytest.mark.parametrize(
    ("topic", "event", "inbox"),
    [
        (ALLOCATIONS, sample_events.server_allocated(), "cost.on_allocation_changed"),
        (SERVER_METRICS, sample_events.server_metrics(), "cost.on_server_metrics_reported"),
        (DEMAND, sample_events.demand_window(), "cost.on_demand_window_reported"),
        (FORECASTS, sample_events.forecast(), "cost.on_demand_forecasted"),
    ],
    ids=lambda value: value.name if isinstance(value, Topic) else None,
)
async def test_each_fleet_event_is_recorded_under_its_topics_inbox_name(monkeypatch, topic: Topic, event: Event, inbox):
    wired = Wired(monkeypatch)
    async with TestKafkaBroker(wired.broker) as br:
        await publish(br, topic, event)
    assert wired.record.calls == [(SESSIONS, inbox, event)]
    assert wired.report_on_request.calls == [] and wired.letters == []


async def test_a_report_request_runs_an_on_demand_cycle_and_updates_the_metrics(monkeypatch):
    wired = Wired(monkeypatch)
    event = sample_events.report_requested()
    async with TestKafkaBroker(wired.broker) as br:
        await publish(br, COST_REPORTS, event)
    context = ("on_demand", "r1")
    assert wired.report_on_request.calls == [(SESSIONS, "cost.on_cost_report_requested", event, context)]
    assert wired.app.reflected == ["report"]
    assert wired.record.calls == []


async def test_its_own_reports_on_the_same_topic_are_ignored(monkeypatch):
    wired = Wired(monkeypatch)
    async with TestKafkaBroker(wired.broker) as br:
        await publish(br, COST_REPORTS, sample_events.cost_reported())
    assert wired.report_on_request.calls == [] and wired.app.reflected == [] and wired.letters == []


@pytest.mark.parametrize("topic", SUBSCRIBED, ids=lambda t: t.name)
async def test_an_unreadable_message_is_dead_lettered(monkeypatch, topic: Topic):
    wired = Wired(monkeypatch)
    async with TestKafkaBroker(wired.broker) as br:
        await publish_unreadable(br, topic)
    assert_dead_lettered(wired.letters, topic, consumer=GROUP, source="cost")
    assert wired.record.calls == [] and wired.report_on_request.calls == []
