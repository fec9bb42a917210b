"""Subscribing with typed events: unreadable messages go to the dead-letter topic, never lost.

`subscribe(broker, topic, group, handler, source)` checks at type-check time that the handler
takes the topic's events, and gives each handler an inbox name (`inbox_consumer()` while it runs):
by default `<service>.<handler name>`, e.g. `scaler.on_demand_window_reported`.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from pydantic import ValidationError
from sqlalchemy.exc import InterfaceError, OperationalError

from shared.broker import at_least_once, publish_event
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


def dead_letter_for(raw: Any, consumer: str, reason: str, source: str) -> DeadLettered:
    """The dead-letter event for an aiokafka ConsumerRecord that could not be read."""
    return DeadLettered(
        source=source,
        reason=reason[:2000],
        consumer=consumer,
        source_topic=raw.topic,
        source_partition=raw.partition,
        source_offset=raw.offset,
        payload_b64=base64.b64encode(raw.value or b"").decode(),
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
    """How often a handler error is retried before the message is dead-lettered."""

    attempts: int = 3
    backoff_s: float = 0.2
    transient_pause_s: float = 1.0


def is_transient(error: BaseException) -> bool:
    """Errors that say "try again later" (database or network down), not "this message is bad"."""
    return isinstance(error, OperationalError | InterfaceError | ConnectionError | TimeoutError)


async def _apply(handler: Handler[E], event: E, policy: RetryPolicy) -> Exception | None:
    """Run the handler, retrying; return the error that outlived the retries, or None."""
    for attempt in range(1, policy.attempts + 1):
        try:
            await handler(event)
            return None
        except Exception as error:
            if is_transient(error):
                # Not the message's fault: leave the offset uncommitted so it comes again.
                await asyncio.sleep(policy.transient_pause_s)
                raise
            if attempt == policy.attempts:
                return error
            log.warning("handler failed (attempt %s of %s): %r", attempt, policy.attempts, error)
            await asyncio.sleep(policy.backoff_s * 2 ** (attempt - 1))
    return None


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
) -> str:
    """Register `handler` for `topic`'s events; return its inbox name (`inbox`, or derived from the handler).

    A message that does not parse, or whose handler keeps failing for a reason that is not
    transient, goes to the dead-letter topic with the reason and the consumer moves on; a
    transient failure (database down) leaves the offset uncommitted, so the message comes again.
    """
    adapter = topic.adapter()
    inbox_name = inbox or inbox_name_for(handler)
    # One Kafka group per topic (`<group>.<topic>`): a service's subscribers are separate
    # consumers, and in one shared group every subscriber that joins rebalances all the others
    # (about 13 s for five subscribers). Replicas still share each topic's partitions.
    kafka_group = topic_group(group_id, topic.name)

    async def dead_letter(raw: Any, reason: str) -> None:
        letter = dead_letter_for(raw, group_id, reason, source)
        log.warning("dead-lettered %s[%s]@%s: %s", raw.topic, raw.partition, raw.offset, letter.reason)
        await publish_event(broker, DEADLETTER, letter, key=letter.source_topic)

    @broker.subscriber(topic.name, **at_least_once(kafka_group))  # type: ignore[untyped-decorator]
    async def consume(message: KafkaMessage) -> None:
        try:
            event: E = adapter.validate_json(message.body)
        except ValidationError as error:
            await dead_letter(message.raw_message, reason_for(error))
            return
        running = _inbox_consumer.set(inbox_name)
        try:
            failure = await _apply(handler, event, retry)
        finally:
            _inbox_consumer.reset(running)
        if failure is not None:
            await dead_letter(message.raw_message, f"handler failed {retry.attempts} times: {reason_for(failure)}")

    return inbox_name
