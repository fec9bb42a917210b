"""Subscribing with typed events, and a failure path that is bounded: no record can stall a consumer forever.

`subscribe(broker, topic, group, handler, source)` checks at type-check time that the handler
takes the topic's events, and gives each handler an inbox name (`inbox_consumer()` while it runs):
by default `<service>.<handler name>`, e.g. `scaler.on_demand_window_reported`.

Every record ends in one of two outcomes, and then its offset is committed:
- handled;
- parked: dead-lettered with the reason (its payload truncated if too large to publish), when
  it does not parse, when its handler fails `attempts` times for a reason that is not transient,
  when transient errors (database or network down) outlast `transient_budget_s` of retries with
  exponential backoff and jitter, or when `deliveries` earlier deliveries never finished (the
  process died each time: counted in `shared.delivery`'s table, across restarts).
A dead-letter publish that keeps failing is logged at ERROR with the record's coordinates and
the consumer goes on: a lost dead letter is bad, a consumer stuck on one record is worse.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from prometheus_client import CollectorRegistry, Counter
from pydantic import ValidationError
from sqlalchemy.exc import InterfaceError, OperationalError

from shared.broker import at_least_once, publish_event
from shared.delivery import DeliveryLedger, RecordAt
from shared.events import DEADLETTER, DeadLettered, Event, Topic

log = logging.getLogger(__name__)

E = TypeVar("E", bound=Event)
Handler = Callable[[E], Awaitable[None]]

# Set for the duration of each handler call, so a handler asks for its inbox name rather than
# typing it by hand (a task-local value: concurrent handlers never see each other's).
_inbox_consumer: ContextVar[str] = ContextVar("inbox_consumer")


def inbox_consumer() -> str:
    """The inbox name of the handler now running under `subscribe`."""
    return _inbox_consumer.get()


def inbox_name_for(handler: Callable[..., Any]) -> str:
    """The default inbox name: the handler's service (or module) and its own name.

    `services.scaler.handlers` / `register.<locals>.on_model_requested` -> `scaler.on_model_requested`.
    Inbox rows are keyed by this name: renaming a handler renames its inbox, so pass the old
    name explicitly (`inbox=`) when a handler is renamed.
    """
    parts = handler.__module__.split(".")
    owner = parts[1] if parts[0] == "services" and len(parts) > 1 else parts[-1]
    return f"{owner}.{handler.__qualname__.rsplit('.', 1)[-1]}"


DEADLETTER_PAYLOAD_MAX = 256 * 1024  # bytes of a record kept in its dead letter: base64 of it fits Kafka's 1 MB


def dead_letter_for(
    raw: Any, consumer: str, reason: str, source: str, payload_max: int = DEADLETTER_PAYLOAD_MAX
) -> DeadLettered:
    """The dead-letter event for an aiokafka ConsumerRecord that was parked.

    The letter carries the payload base64 (4/3 of its size), so a record near Kafka's message
    limit would make a letter over it, and the publish would fail every time: beyond
    `payload_max` bytes the payload is cut and the reason says `truncated` and the full size.
    """
    payload = raw.value or b""
    if len(payload) > payload_max:
        reason = f"{reason[:1500]} (payload truncated to {payload_max} of {len(payload)} bytes)"
        payload = payload[:payload_max]
    return DeadLettered(
        source=source,
        reason=reason[:2000],
        consumer=consumer,
        source_topic=raw.topic,
        source_partition=raw.partition,
        source_offset=raw.offset,
        payload_b64=base64.b64encode(payload).decode(),
    )


def reason_for(error: Exception) -> str:
    """A short, human-readable reason: which field failed and why, or where the JSON broke."""
    if isinstance(error, ValidationError):
        problems = error.errors(include_url=False, include_input=False)
        if problems and problems[0]["type"] == "json_invalid":
            return f"invalid JSON: {problems[0]['msg']}"
        fields = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in problems[:5])
        return f"validation failed: {fields}"
    return f"{type(error).__name__}: {error}"


@dataclass(frozen=True)
class RetryPolicy:
    """How a record's failures are retried before it is parked (dead-lettered) and the consumer moves on.

    The defaults wait out a database or broker outage of several minutes (a 60 s Postgres
    restart is retried through, not parked) and give up on a record that is itself bad after three
    tries. Every bound is finite, so no record holds its partition for longer than about
    `transient_budget_s` plus one handler call and the dead-letter retries.
    """

    attempts: int = 3  # handler calls for an error that is not transient
    backoff_s: float = 0.2  # the pause after the first such failure, doubled after each
    transient_budget_s: float = 600.0  # how long transient errors are retried before the record is parked
    transient_backoff_s: float = 1.0  # the first pause after a transient error, doubled up to the cap
    transient_backoff_max_s: float = 30.0
    deliveries: int = 3  # deliveries that never finished (the process died in each) before the record is parked
    dead_letter_attempts: int = 5  # publishes of a dead letter before it is given up (logged at ERROR)
    dead_letter_backoff_s: float = 0.5
    dead_letter_payload_max: int = DEADLETTER_PAYLOAD_MAX
    handler_slack_s: float = 300.0  # one handler call and the dead-letter retries, on top of the budget

    def transient_delay(self, failures: int, jitter: float) -> float:
        """The pause after the `failures`-th transient error; `jitter` in [0, 1).

        Doubling up to `transient_backoff_max_s`, then a random point in the upper half of that
        ("equal jitter"): replicas that failed together do not retry together, and the pause
        never drops below half the step, so an outage is not hammered.
        """
        ceiling = min(self.transient_backoff_max_s, self.transient_backoff_s * 2 ** min(failures - 1, 30))
        return float(ceiling * (0.5 + jitter / 2))

    @property
    def max_poll_interval_ms(self) -> int:
        """The consumer's `max.poll.interval.ms`: longer than one record can take.

        A consumer that does not poll within it leaves its group; its partition goes to another
        replica and the offset commit after the record fails, so the record would come again.
        A record retried through an outage keeps the loop that long on purpose, so the interval
        covers the transient budget plus a handler call (Kafka's default is 300 s).
        """
        return int((self.transient_budget_s + self.handler_slack_s) * 1000)


def is_transient(error: BaseException) -> bool:
    """Errors that say "try again later" (database or network down), not "this message is bad"."""
    return isinstance(error, OperationalError | InterfaceError | ConnectionError | TimeoutError)


@dataclass(frozen=True)
class Parked:
    """A record given up on: the reason its dead letter carries, and the cause it is counted under."""

    reason: str
    cause: Literal["unreadable", "failing", "transient", "crash_loop"]


@dataclass(frozen=True)
class Pace:
    """The sleep, clock and randomness the retries use (fakes in unit tests: no test waits for real)."""

    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    clock: Callable[[], float] = time.monotonic
    jitter: Callable[[], float] = random.random


REAL_PACE = Pace()


class DeliveryMetrics:
    """Parked records and lost dead letters of one service, on its registry (`llmfleet_<service>_...`)."""

    def __init__(self, registry: CollectorRegistry, service: str) -> None:
        prefix = f"llmfleet_{service.replace('-', '_')}"
        self.parked = Counter(
            f"{prefix}_records_parked",
            "Records given up on and dead-lettered, by topic and cause",
            ["topic", "cause"],
            registry=registry,
        )
        self.dead_letters_lost = Counter(
            f"{prefix}_dead_letters_lost",
            "Parked records whose dead letter could not be published (logged at ERROR, consumption went on)",
            ["topic"],
            registry=registry,
        )


async def _count_delivery(ledger: DeliveryLedger, at: RecordAt, policy: RetryPolicy) -> Parked | None:
    """Count this delivery; a Parked when earlier ones never finished `policy.deliveries` times."""
    try:
        noted = await ledger.note_delivery(at)
    except Exception as error:
        if is_transient(error):
            raise  # the database is down: retried (and bounded) like any transient error
        # A ledger that does not work (a missing table) must not park good records: handle it
        # uncounted, loudly.
        log.error("could not count the delivery of %s: %r; handling it uncounted", at, error)
        return None
    if noted.deliveries > policy.deliveries:
        last = f"; last error: {noted.last_error}" if noted.last_error else ""
        earlier = noted.deliveries - 1
        deliveries = f"{earlier} deliver{'y' if earlier == 1 else 'ies'}"
        return Parked(f"{deliveries} did not finish (the consumer stopped or crashed in each){last}", "crash_loop")
    return None


async def _best_effort(what: str, at: RecordAt, step: Awaitable[None]) -> None:
    """Bookkeeping that must never decide a record's outcome: a failure is logged, not raised."""
    try:
        await step
    except Exception as error:
        log.warning("could not %s for %s: %r", what, at, error)


async def apply_with_retries(
    handler: Handler[E],
    event: E,
    policy: RetryPolicy,
    pace: Pace = REAL_PACE,
    ledger: DeliveryLedger | None = None,
    at: RecordAt | None = None,
) -> Parked | None:
    """Run the handler until it succeeds (None) or a bound is reached (why the record is parked).

    With a `ledger`, this delivery is counted first (see `shared.delivery`), and a record whose
    earlier deliveries never finished `policy.deliveries` times is parked without running the
    handler.
    """
    started = pace.clock()
    failures = transient = 0
    to_count = ledger is not None and at is not None
    counted = False
    while True:
        try:
            if to_count and ledger is not None and at is not None:
                parked = await _count_delivery(ledger, at, policy)
                to_count, counted = False, True
                if parked is not None:
                    return parked
            await handler(event)
            return None
        except Exception as error:
            reason = reason_for(error)
            if is_transient(error):
                transient += 1
                delay = policy.transient_delay(transient, pace.jitter())
                waited = pace.clock() - started
                if waited + delay > policy.transient_budget_s:
                    return Parked(f"transient errors for {waited:.0f} s ({transient} tries): {reason}", "transient")
                log.warning("transient failure (try %s, next in %.1f s): %s", transient, delay, reason)
                await pace.sleep(delay)
                continue
            failures += 1
            if counted and ledger is not None and at is not None:
                # Kept on the row, so a record that then kills the process is parked with a clue.
                # (Transient errors are not written: the database is likely what is down.)
                await _best_effort("note the error", at, ledger.note_error(at, reason))
            if failures >= policy.attempts:
                return Parked(f"handler failed {failures} times: {reason}", "failing")
            log.warning("handler failed (attempt %s of %s): %s", failures, policy.attempts, reason)
            await pace.sleep(policy.backoff_s * 2 ** (failures - 1))


class LastOffsets:
    """The last offset this process saw on each partition, to tell which records may have crashed a process.

    A consumer resumes at its group's committed offset, so a record that killed a process is the
    first one the next process sees on its partition. Only a record that is not the successor of
    the last one seen (the first after start or after a rebalance, a redelivery, a jump over
    compacted offsets) needs its delivery counted; the steady stream after it costs no write.
    """

    def __init__(self) -> None:
        self._last: dict[tuple[str, int], int] = {}

    def first_sight(self, topic: str, partition: int, offset: int) -> bool:
        """Note the record as seen; True when it does not directly follow the last one seen on its partition."""
        previous = self._last.get((topic, partition))
        self._last[(topic, partition)] = offset
        return previous != offset - 1


def topic_group(group_id: str, topic_name: str) -> str:
    """The Kafka consumer group in which a service's replicas read one topic."""
    return f"{group_id}.{topic_name}"


def subscribe(
    broker: KafkaBroker,
    topic: Topic[E],
    group_id: str,
    handler: Handler[E],
    source: str,
    retry: RetryPolicy = RetryPolicy(),
    inbox: str | None = None,
    ledger: DeliveryLedger | None = None,
    metrics: DeliveryMetrics | None = None,
    pace: Pace = REAL_PACE,
) -> str:
    """Register `handler` for `topic`'s events; return its inbox name (`inbox`, or derived from the handler).

    Every record is handled or parked (see the module's notes), then its offset is committed.
    `ledger` counts deliveries across restarts (`ServiceApp.subscribe` passes the service's
    `delivery_attempt` table; without one a record that crashes the process is not bounded);
    `metrics` counts parked records and lost dead letters.
    """
    adapter = topic.adapter()
    inbox_name = inbox or inbox_name_for(handler)
    # One Kafka group per topic (`<group>.<topic>`): a service's subscribers are separate
    # consumers, and in one shared group every subscriber that joins rebalances all the others
    # (about 13 s for five subscribers). Replicas still share each topic's partitions.
    kafka_group = topic_group(group_id, topic.name)
    seen = LastOffsets()

    async def park(raw: Any, parked: Parked) -> None:
        letter = dead_letter_for(raw, group_id, parked.reason, source, retry.dead_letter_payload_max)
        if metrics is not None:
            metrics.parked.labels(topic.name, parked.cause).inc()
        for attempt in range(1, retry.dead_letter_attempts + 1):
            try:
                await publish_event(broker, DEADLETTER, letter, key=letter.source_topic)
            except Exception as error:
                if attempt < retry.dead_letter_attempts:
                    log.warning("dead-letter publish failed (attempt %s): %r", attempt, error)
                    await pace.sleep(retry.dead_letter_backoff_s * 2 ** (attempt - 1))
                    continue
                # Given up: the record is only in this log line now, and the consumer goes on.
                log.error(
                    "could not dead-letter %s[%s]@%s (consumer %s) after %s attempts (%r); moving past it. "
                    "It was parked because: %s",
                    raw.topic,
                    raw.partition,
                    raw.offset,
                    kafka_group,
                    attempt,
                    error,
                    letter.reason,
                )
                if metrics is not None:
                    metrics.dead_letters_lost.labels(topic.name).inc()
                return
            log.warning("dead-lettered %s[%s]@%s: %s", raw.topic, raw.partition, raw.offset, letter.reason)
            return

    @broker.subscriber(  # type: ignore[untyped-decorator]
        topic.name, **at_least_once(kafka_group), max_poll_interval_ms=retry.max_poll_interval_ms
    )
    async def consume(message: KafkaMessage) -> None:
        raw: Any = message.raw_message  # one aiokafka ConsumerRecord (not a batch subscriber)
        first_sight = seen.first_sight(raw.topic, raw.partition, raw.offset)
        try:
            event: E = adapter.validate_json(message.body)
        except ValidationError as error:
            await park(raw, Parked(reason_for(error), "unreadable"))
            return
        counting = ledger if first_sight else None
        at = RecordAt(kafka_group, raw.topic, raw.partition, raw.offset)
        running = _inbox_consumer.set(inbox_name)
        try:
            parked = await apply_with_retries(handler, event, retry, pace, counting, at)
        finally:
            _inbox_consumer.reset(running)
        if parked is not None:
            await park(raw, parked)
        if counting is not None:
            await _best_effort("forget the delivery count", at, counting.forget(at))

    return inbox_name
