"""`shared.subscribe` on FastStream's in-memory broker: typed events in, inbox names, dead letters out."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from faststream.kafka import TestKafkaBroker
from sqlalchemy.exc import OperationalError

from shared.delivery import Noted, RecordAt
from shared.events import ALLOCATIONS, DEMAND, DemandWindowReported, Event, ModelLoaded, ServerReleased
from shared.metrics import new_registry
from shared.subscribe import DeliveryMetrics, Pace, RetryPolicy, inbox_consumer, subscribe, topic_group
from tests.support.wiring import (
    MemoryLedger,
    assert_dead_lettered,
    dead_letters,
    publish,
    publish_unreadable,
    wiring_broker,
)

FAST = RetryPolicy(attempts=3, backoff_s=0.0, transient_budget_s=5.0, transient_backoff_s=1.0, dead_letter_attempts=3)


class FakeTime:
    """A clock that moves only when the consumer sleeps: the retries take no real time."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self.pace = Pace(sleep=self.sleep, clock=lambda: self.now, jitter=lambda: 0.0)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


NOW = datetime(2026, 1, 1, tzinfo=UTC)


def demand() -> DemandWindowReported:
    return DemandWindowReported(
        source="router", model_id="m", region="us-east-1", window_start=NOW, window_end=NOW, requests=3
    )


async def test_a_handler_gets_the_topics_event_class_and_its_inbox_name():
    broker = wiring_broker()
    seen: list[tuple[Event, str]] = []

    async def on_allocation_changed(event: Event) -> None:
        seen.append((event, inbox_consumer()))

    name = subscribe(broker, ALLOCATIONS, "svc", on_allocation_changed, source="svc")
    loaded = ModelLoaded(source="allocator", server_id="s1", model_id="m", region="us-east-1")
    released = ServerReleased(source="allocator", server_id="s1", region="us-east-1")
    async with TestKafkaBroker(broker) as br:
        await publish(br, ALLOCATIONS, loaded)
        await publish(br, ALLOCATIONS, released)
    assert name == "test_subscribe.on_allocation_changed"
    assert seen == [(loaded, name), (released, name)]
    assert type(seen[0][0]) is ModelLoaded and type(seen[1][0]) is ServerReleased


async def test_an_explicit_inbox_name_wins_and_lasts_only_while_the_handler_runs():
    broker = wiring_broker()
    names: list[str] = []

    async def handler(event: DemandWindowReported) -> None:
        names.append(inbox_consumer())

    assert subscribe(broker, DEMAND, "svc", handler, source="svc", inbox="svc.on_old_name") == "svc.on_old_name"
    async with TestKafkaBroker(broker) as br:
        await publish(br, DEMAND, demand())
    assert names == ["svc.on_old_name"]
    with pytest.raises(LookupError):
        inbox_consumer()


def test_each_topic_is_read_in_its_own_consumer_group():
    broker = wiring_broker()

    async def handler(event: Event) -> None: ...

    subscribe(broker, DEMAND, "llmfleet-scaler", handler, source="scaler")
    subscribe(broker, ALLOCATIONS, "llmfleet-scaler", handler, source="scaler")
    groups = {s.group_id for s in broker.subscribers}
    assert groups == {topic_group("llmfleet-scaler", DEMAND.name), topic_group("llmfleet-scaler", ALLOCATIONS.name)}


async def test_bytes_that_are_not_json_go_to_the_dead_letter_topic_and_the_handler_is_not_called():
    broker = wiring_broker()
    letters = dead_letters(broker)
    calls: list[Event] = []

    async def handler(event: DemandWindowReported) -> None:
        calls.append(event)

    subscribe(broker, DEMAND, "llmfleet-scaler", handler, source="scaler")
    async with TestKafkaBroker(broker) as br:
        await publish_unreadable(br, DEMAND)
        await publish(br, DEMAND, demand())  # the consumer goes on
    assert_dead_lettered(letters, DEMAND, consumer="llmfleet-scaler", source="scaler")
    assert len(calls) == 1


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        (DEMAND, b'{"type": "demand_window_reported"}', "validation failed: source: Field required"),
        # JSON of an event this topic does not carry.
        (ALLOCATIONS, demand().model_dump_json().encode(), "validation failed: <root>: Input tag 'demand_window_"),
    ],
)
async def test_json_that_is_not_an_event_of_the_topic_is_dead_lettered_with_the_failing_field(topic, payload, reason):
    broker = wiring_broker()
    letters = dead_letters(broker)

    async def handler(event: Event) -> None:
        raise AssertionError("not an event of the topic")

    subscribe(broker, topic, "g", handler, source="s")
    async with TestKafkaBroker(broker) as br:
        await br.publish(payload, topic.name)
    assert [letter.reason[: len(reason)] for letter in letters] == [reason]
    assert base64.b64decode(letters[0].payload_b64) == payload


async def test_a_handler_that_keeps_failing_is_retried_then_its_message_dead_lettered():
    broker = wiring_broker()
    letters = dead_letters(broker)
    calls: list[Event] = []

    async def handler(event: DemandWindowReported) -> None:
        calls.append(event)
        raise ValueError("unknown model m")

    subscribe(broker, DEMAND, "g", handler, source="s", retry=FAST)
    async with TestKafkaBroker(broker) as br:
        await publish(br, DEMAND, demand())
    assert len(calls) == 3
    assert [letter.reason for letter in letters] == ["handler failed 3 times: ValueError: unknown model m"]


async def test_a_transient_failure_is_retried_within_its_budget_then_parked_and_the_consumer_goes_on():
    broker = wiring_broker()
    letters = dead_letters(broker)
    time, handled = FakeTime(), []
    metrics = DeliveryMetrics(new_registry(), "svc")

    async def handler(event: DemandWindowReported) -> None:
        if event.model_id == "down":  # this record's writes always fail as if the database were down
            raise OperationalError("select 1", {}, ConnectionRefusedError())
        handled.append(event.model_id)

    subscribe(broker, DEMAND, "g", handler, source="s", retry=FAST, metrics=metrics, pace=time.pace)
    async with TestKafkaBroker(broker) as br:
        await publish(br, DEMAND, demand().model_copy(update={"model_id": "down"}))  # returns: committed past
        await publish(br, DEMAND, demand())
    assert handled == ["m"]
    assert [letter.reason.split(" for ")[0] for letter in letters] == ["transient errors"]
    assert len(time.sleeps) == 3  # 0.5, 1, 2: a fourth pause (4 s) would overrun the 5 s budget
    assert "OperationalError" in letters[0].reason
    assert sum(time.sleeps) <= FAST.transient_budget_s
    assert metrics.parked.labels(DEMAND.name, "transient")._value.get() == 1


async def test_a_record_that_crashed_earlier_processes_is_parked_without_running_the_handler():
    broker = wiring_broker()
    letters = dead_letters(broker)
    calls: list[Event] = []
    # The in-memory broker delivers at partition 0, offset 0; the row says three processes died there.
    at = RecordAt(topic_group("g", DEMAND.name), DEMAND.name, 0, 0)
    ledger = MemoryLedger(rows={at: Noted(3, "RuntimeError: boom")})

    async def handler(event: DemandWindowReported) -> None:
        calls.append(event)

    subscribe(broker, DEMAND, "g", handler, source="s", retry=FAST, ledger=ledger)
    async with TestKafkaBroker(broker) as br:
        await publish(br, DEMAND, demand())
        assert calls == [] and ledger.rows == {}  # parked, and its count forgotten
        await publish(br, DEMAND, demand())  # the next delivery at that offset starts afresh
    assert len(calls) == 1
    assert [letter.reason for letter in letters] == [
        "3 deliveries did not finish (the consumer stopped or crashed in each); last error: RuntimeError: boom"
    ]


async def test_a_dead_letter_that_cannot_be_published_is_logged_with_its_coordinates_and_the_consumer_goes_on(
    monkeypatch, caplog
):
    broker = wiring_broker()
    time, calls, tries = FakeTime(), [], []
    metrics = DeliveryMetrics(new_registry(), "svc")

    async def refused(broker, topic, event, key):
        tries.append(event)
        raise RuntimeError("MessageSizeTooLargeError")

    monkeypatch.setattr("shared.subscribe.publish_event", refused)

    async def handler(event: DemandWindowReported) -> None:
        calls.append(event)
        if len(calls) == 1:
            raise ValueError("unknown model m")

    subscribe(broker, DEMAND, "g", handler, source="s", retry=RetryPolicy(attempts=1), metrics=metrics, pace=time.pace)
    async with TestKafkaBroker(broker) as br:
        await publish(br, DEMAND, demand())  # does not raise: no seek back to this record
        await publish(br, DEMAND, demand())
    assert len(calls) == 2  # the consumer went on
    assert len(tries) == RetryPolicy().dead_letter_attempts
    assert time.sleeps == [0.5, 1.0, 2.0, 4.0]
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1
    message = errors[0].getMessage()
    assert "fleet.demand.v1[0]@0" in message and "g.fleet.demand.v1" in message and "unknown model m" in message
    assert metrics.dead_letters_lost.labels(DEMAND.name)._value.get() == 1
