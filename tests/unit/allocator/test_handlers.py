"""The allocator's handler wiring on FastStream's in-memory broker: each event reaches its use case."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from faststream.kafka import KafkaBroker, TestKafkaBroker

from services.allocator import handlers
from shared.events import ALLOCATIONS, PRICES, SCALING_ACTIONS, DeadLettered, Topic
from tests.support import sample_events
from tests.support.wiring import (
    FakeApp,
    UseCase,
    assert_dead_lettered,
    dead_letters,
    publish,
    publish_unreadable,
    wiring_broker,
)

GROUP = "llmfleet-allocator"
SETTINGS = SimpleNamespace(group_id=GROUP, service_name="allocator")


def allocator() -> SimpleNamespace:
    """What the use cases get: the handlers pass it on, and wake its provisioning worker."""
    return SimpleNamespace(settings=SETTINGS, work_ready=asyncio.Event())


class FakeAllocatorApp(FakeApp):
    """What `register` uses of `AllocatorApp`: the runtime, settings and `allocator`."""

    def __init__(self, broker: KafkaBroker) -> None:
        super().__init__(broker, SETTINGS)
        self.allocator = allocator()


class Wired:
    """The allocator's handlers on an in-memory broker, its use cases replaced by stand-ins."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, planned: bool = True) -> None:
        self.plan_action = UseCase(result=planned)
        self.record_prices = UseCase()
        self.record_registration = UseCase()
        self.change_capacity = UseCase()
        monkeypatch.setattr(handlers.planning, "plan_action", self.plan_action)
        monkeypatch.setattr(handlers.capacity, "change_capacity", self.change_capacity)
        monkeypatch.setattr(handlers.registrations, "record_registration", self.record_registration)
        monkeypatch.setattr(handlers.prices, "record_prices", self.record_prices)
        self.broker: KafkaBroker = wiring_broker()
        self.letters: list[DeadLettered] = dead_letters(self.broker)
        self.app = FakeAllocatorApp(self.broker)
        handlers.register(self.app)  # type: ignore[arg-type]  # a stand-in for AllocatorApp

    def called(self) -> bool:
        return (
            any(case.calls for case in (self.plan_action, self.record_prices, self.change_capacity))
            or self.app.allocator.work_ready.is_set()
        )


async def test_a_requested_action_is_planned_and_the_worker_woken_not_waited_for(monkeypatch):
    wired = Wired(monkeypatch)
    event = sample_events.action_requested()
    async with TestKafkaBroker(wired.broker) as br:
        await publish(br, SCALING_ACTIONS, event)
    assert wired.plan_action.calls == [(wired.app.allocator, "allocator.on_scaling_action_requested", event)]
    assert wired.app.allocator.work_ready.is_set()  # the provisioning worker carries it out, off the consumer
    assert wired.letters == []


async def test_an_action_not_planned_this_time_wakes_no_worker(monkeypatch):
    # plan_action says False for a repeat delivery or a refused action.
    wired = Wired(monkeypatch, planned=False)
    async with TestKafkaBroker(wired.broker) as br:
        await publish(br, SCALING_ACTIONS, sample_events.action_requested())
    assert len(wired.plan_action.calls) == 1 and not wired.app.allocator.work_ready.is_set()


async def test_an_overdue_action_is_not_the_allocators(monkeypatch):
    wired = Wired(monkeypatch)
    async with TestKafkaBroker(wired.broker) as br:
        await publish(br, SCALING_ACTIONS, sample_events.action_overdue())
    assert not wired.called() and wired.letters == []


async def test_a_capacity_change_an_operator_applied_is_carried_out_without_planning(monkeypatch):
    wired = Wired(monkeypatch)
    event = sample_events.capacity_change()
    async with TestKafkaBroker(wired.broker) as br:
        await publish(br, SCALING_ACTIONS, event)
    assert wired.change_capacity.calls == [(wired.app.allocator, "allocator.on_scaling_action_requested", event)]
    assert wired.plan_action.calls == [] and not wired.app.allocator.work_ready.is_set()
    assert wired.letters == []


async def test_published_prices_are_recorded(monkeypatch):
    wired = Wired(monkeypatch)
    event = sample_events.prices()
    async with TestKafkaBroker(wired.broker) as br:
        await publish(br, PRICES, event)
    assert wired.record_prices.calls == [(wired.app.allocator, "allocator.on_prices_published", event)]
    assert wired.plan_action.calls == []


async def test_servers_announced_on_the_allocations_topic_are_recorded_for_the_reconciler(monkeypatch):
    wired = Wired(monkeypatch)
    event = sample_events.server_allocated()
    async with TestKafkaBroker(wired.broker) as br:
        await publish(br, ALLOCATIONS, event)
    assert wired.record_registration.calls == [(wired.app.allocator, "allocator.on_allocation_event", event)]


@pytest.mark.parametrize("topic", [SCALING_ACTIONS, PRICES, ALLOCATIONS], ids=lambda t: t.name)
async def test_an_unreadable_message_is_dead_lettered(monkeypatch, topic: Topic):
    wired = Wired(monkeypatch)
    async with TestKafkaBroker(wired.broker) as br:
        await publish_unreadable(br, topic)
    assert_dead_lettered(wired.letters, topic, consumer=GROUP, source="allocator")
    assert not wired.called()
