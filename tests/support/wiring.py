"""Handler wiring without Kafka or Postgres: FastStream's in-memory broker, stand-ins for use cases, dead letters.

A test builds a broker with `wiring_broker()`, collects its dead letters with `dead_letters(broker)`,
lets the service's `handlers.register(app)` subscribe on it (`app` a `FakeApp`: a `ServiceApp` over
stand-ins), replaces the use cases the handlers call with `UseCase` stand-ins, and publishes inside
`TestKafkaBroker(broker)`: each message runs through the real `shared.subscribe` consumer (parse,
inbox name, retries, dead-lettering).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from opentelemetry.sdk.trace import TracerProvider
from sqlalchemy import MetaData

from shared.broker import create_broker, publish_event
from shared.delivery import DeliveryLedger, Noted, RecordAt
from shared.events import DEADLETTER, DeadLettered, Event, Topic
from shared.metrics import new_registry
from shared.outbox import outbox_table
from shared.runtime import ServiceApp

UNREADABLE = b"{not json"
SESSIONS = object()  # stands in for the session factory: the handlers only pass it on


def wiring_broker() -> KafkaBroker:
    """A broker built as the services build theirs (telemetry middleware, at-least-once subscribers).

    `TestKafkaBroker` replaces its connection, so the address is never dialled.
    """
    return create_broker("127.0.0.1:9", "llmfleet-wiring-test", TracerProvider())


class CountingRelay:
    """Stands in for the outbox relay: counts its wake-ups."""

    def __init__(self) -> None:
        self.notified = 0

    def notify(self) -> None:
        self.notified += 1


@dataclass
class MemoryLedger:
    """Stands in for the `delivery_attempt` table: delivery counts and last errors in a dict."""

    rows: dict[RecordAt, Noted] = field(default_factory=dict)
    noted: list[RecordAt] = field(default_factory=list)  # every delivery counted, in order

    async def note_delivery(self, at: RecordAt) -> Noted:
        old = self.rows.get(at, Noted(0, None))
        self.rows[at] = Noted(old.deliveries + 1, old.last_error)
        self.noted.append(at)
        return self.rows[at]

    async def note_error(self, at: RecordAt, error: str) -> None:
        if at in self.rows:
            self.rows[at] = Noted(self.rows[at].deliveries, error)

    async def forget(self, at: RecordAt) -> None:
        self.rows.pop(at, None)


class FakeApp(ServiceApp[Any, Any]):
    """A `ServiceApp` over stand-ins, as `register(app)` sees one: its real `subscribe` on the in-memory
    broker, a token for the session factory, a relay that counts wake-ups; each service's test adds
    its metrics and dependencies."""

    def __init__(self, broker: KafkaBroker, settings: Any, metrics: Any = None) -> None:
        runtime: Any = SimpleNamespace(broker=broker, sessions=SESSIONS, registry=new_registry())
        super().__init__(runtime, settings, metrics, outbox_table(MetaData()))
        self.counting = CountingRelay()
        self.relay = self.counting  # type: ignore[assignment]  # only notify() is called
        self.ledger = MemoryLedger()

    def delivery_ledger(self) -> DeliveryLedger:
        """Deliveries counted in memory (the session factory is a token here)."""
        return self.ledger

    @property
    def notified(self) -> int:
        """How many times the handlers woke the relay."""
        return self.counting.notified


@dataclass
class UseCase:
    """Stands in for a use-case function: records each call's arguments and returns `result`."""

    result: Any = None
    calls: list[tuple[Any, ...]] = field(default_factory=list)

    async def __call__(self, *args: Any) -> Any:
        self.calls.append(args)
        return self.result


def dead_letters(broker: KafkaBroker) -> list[DeadLettered]:
    """The dead letters `broker` will publish, as a list that fills while the test runs.

    Call it before `TestKafkaBroker(broker)` starts: the in-memory broker delivers a publish only
    to the subscribers it knows.
    """
    letters: list[DeadLettered] = []

    @broker.subscriber(DEADLETTER.name)
    async def collect(message: KafkaMessage) -> None:
        letters.append(DeadLettered.model_validate_json(message.body))

    return letters


async def publish(broker: KafkaBroker, topic: Topic, event: Event) -> None:
    """Publish `event` on `topic` as the services do (JSON, keyed)."""
    await publish_event(broker, topic, event, key="wiring")


async def publish_unreadable(broker: KafkaBroker, topic: Topic) -> None:
    """Publish bytes that are not JSON on `topic`."""
    await broker.publish(UNREADABLE, topic.name)


def assert_dead_lettered(letters: list[DeadLettered], topic: Topic, consumer: str, source: str) -> None:
    """Exactly one dead letter, for the unreadable bytes on `topic`, with a reason."""
    assert len(letters) == 1, letters
    letter = letters[0]
    assert letter.source_topic == topic.name
    assert letter.consumer == consumer and letter.source == source
    assert letter.reason.startswith("invalid JSON"), letter.reason
    assert base64.b64decode(letter.payload_b64) == UNREADABLE
