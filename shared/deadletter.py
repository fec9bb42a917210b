"""Subscribing with typed events: unreadable messages go to the dead-letter topic, never lost."""

from __future__ import annotations

import base64
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from pydantic import ValidationError

from shared.broker import at_least_once, publish_event
from shared.events import DEADLETTER, DeadLettered, Event, Topic

log = logging.getLogger(__name__)

Handler = Callable[[Any], Awaitable[None]]


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


def subscribe(broker: KafkaBroker, topic: Topic, group_id: str, handler: Handler, source: str) -> None:
    """Register `handler` for `topic`'s events; a message that fails to parse is dead-lettered."""
    adapter = topic.adapter()

    @broker.subscriber(topic.name, **at_least_once(group_id))  # type: ignore[untyped-decorator]
    async def consume(message: KafkaMessage) -> None:
        try:
            event: Event = adapter.validate_json(message.body)
        except ValidationError as error:
            letter = dead_letter_for(message.raw_message, group_id, reason_for(error), source)
            log.warning(
                "dead-lettered %s[%s]@%s: %s",
                letter.source_topic,
                letter.source_partition,
                letter.source_offset,
                letter.reason,
            )
            await publish_event(broker, DEADLETTER, letter, key=letter.source_topic)
            return
        await handler(event)
