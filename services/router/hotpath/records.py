"""From a Kafka record to a `Pending` request: parse, continue the producer's trace, note the clocks.

Whatever a record holds, `read_request` returns a request or raises `Unreadable`, which carries
the reason and, when they can be read at all, the request id and reply topic, so that even an
invalid request gets its one result. Timestamps without a zone are read as UTC; a producer clock
more than `CLOCK_SKEW_S` behind Kafka's own record timestamp is replaced by Kafka's.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Tracer
from pydantic import ValidationError

from services.router.domain.offsets import Partition
from services.router.domain.requests import Pending
from shared.events import InferenceRequested
from shared.subscribe import reason_for

CLOCK_SKEW_S = 3600.0
LENIENT_PARSE_MAX_BYTES = 1 << 20  # larger invalid records are not searched for a request id


class Unreadable(Exception):
    """A request record that cannot be served: why, and what of it could be read."""

    def __init__(self, reason: str, request_id: str | None, reply_topic: str | None, model_id: str | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.request_id = request_id
        self.reply_topic = reply_topic
        self.model_id = model_id


def _text(fields: dict[str, Any], name: str, max_len: int = 200) -> str | None:
    value = fields.get(name)
    return value if isinstance(value, str) and 0 < len(value) <= max_len else None


def unreadable(value: bytes | None, reason: str) -> Unreadable:
    """The reason, with whatever identifies the request when the record is a JSON object."""
    fields: Any = None
    if value and len(value) <= LENIENT_PARSE_MAX_BYTES:
        try:
            fields = json.loads(value)
        except (ValueError, RecursionError):
            fields = None
    if not isinstance(fields, dict):
        return Unreadable(reason, None, None, None)
    return Unreadable(reason, _text(fields, "request_id"), _text(fields, "reply_topic", 249), _text(fields, "model_id"))


def epoch(moment: datetime) -> float:
    """Seconds since the epoch; a naive time is UTC (the contract says so)."""
    return (moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)).timestamp()


@dataclass(slots=True)
class Ticket:
    """What the shell keeps with a request: where it came from, its span, its clocks."""

    partition: Partition | None
    offset: int
    span: Span
    reply_topic: str | None
    occurred_at: float  # wall clock, epoch seconds
    received: float  # monotonic, when the poll returned the record
    queued_ms: float  # from the request's occurred_at to the poll
    batched_ms: float = 0.0
    # The partition's assignment when read (see OffsetTracker.epochs); and set when the partition
    # moved to another replica: its new owner answers the request instead.
    epoch: int = 0
    abandoned: bool = False


def record_ticket(record: Any, epoch: int) -> Ticket:
    """The ticket of a record with no servable request: its rejection or dead letter frees the offset."""
    partition = (record.topic, record.partition)
    return Ticket(partition, record.offset, trace.INVALID_SPAN, None, time.time(), time.monotonic(), 0.0, epoch=epoch)


def headers_of(record: Any) -> dict[str, str]:
    """A Kafka record's headers as text (trace context lives there)."""
    return {key: value.decode(errors="replace") for key, value in (record.headers or ()) if value is not None}


def read_request(record: Any, tracer: Tracer, now: float, wall: float, seq: int, trace_root: bool = True) -> Pending:
    """Parse a request record and open its router span under the producer's span (raises if invalid).

    A request that carries a trace context is always traced (the producer's sampler decided); one
    without is traced only when `trace_root` (the caller samples), as spans cost ~20 us each.
    """
    try:
        event = InferenceRequested.model_validate_json(record.value)
    except ValidationError as error:
        raise unreadable(record.value, reason_for(error)) from None
    try:
        occurred = epoch(event.occurred_at)
        deadline_at = None if event.deadline is None else epoch(event.deadline)
    except (ValueError, OverflowError, OSError) as error:
        raise Unreadable(f"unreadable time: {error}", event.request_id, event.reply_topic, event.model_id) from None
    kafka_time = getattr(record, "timestamp", None)
    if isinstance(kafka_time, int) and kafka_time > 0 and occurred < kafka_time / 1000 - CLOCK_SKEW_S:
        occurred = kafka_time / 1000  # the producer's clock is off; Kafka's append time is not
    parent = propagate.extract(headers_of(record)) if record.headers else None
    if parent is None or not trace.get_current_span(parent).get_span_context().is_valid:
        parent = None
    if parent is None and not trace_root:
        span: Span = trace.INVALID_SPAN
    else:
        span = tracer.start_span(
            f"{record.topic} process",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.destination.name": record.topic,
                "messaging.kafka.offset": record.offset,
                "llmfleet.request_id": event.request_id,
                "llmfleet.model_id": event.model_id,
            },
        )
    ticket = Ticket(
        partition=(record.topic, record.partition),
        offset=record.offset,
        span=span,
        reply_topic=event.reply_topic,
        occurred_at=occurred,
        received=now,
        queued_ms=max(0.0, (wall - occurred) * 1000),
    )
    # Deadlines arrive as wall-clock times; the core works in monotonic time.
    deadline = None if deadline_at is None else now + (deadline_at - wall)
    return Pending(
        request_id=event.request_id,
        model_id=event.model_id,
        prompt=event.prompt,
        max_tokens=event.max_tokens,
        # Batch wait starts here; the time since the poll (earlier records' intake) is router overhead.
        arrived=time.monotonic(),
        seq=seq,
        temperature=event.temperature,
        top_p=event.top_p,
        priority=event.priority,
        region=event.user_region,
        strategy=event.routing_strategy,
        deadline=deadline,
        fail_fast=event.fail_fast,
        stream=event.stream,
        ticket=ticket,
    )


def ticket(request: Pending) -> Ticket:
    """The shell's ticket of a request read by `read_request`."""
    found: Ticket = request.ticket
    return found


def context_of(span: Span) -> Any:
    """A context whose current span is `span` (to parent children or inject headers)."""
    return trace.set_span_in_context(span)
