"""From a Kafka record to a `Pending` request: parse, continue the producer's trace, note the clocks."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Tracer

from services.router.domain.offsets import Partition
from services.router.domain.requests import Pending
from shared.events import InferenceRequested


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


def headers_of(record: Any) -> dict[str, str]:
    """A Kafka record's headers as text (trace context lives there)."""
    return {key: value.decode(errors="replace") for key, value in (record.headers or ()) if value is not None}


def read_request(record: Any, tracer: Tracer, now: float, wall: float, seq: int, trace_root: bool = True) -> Pending:
    """Parse a request record and open its router span under the producer's span (raises if invalid).

    A request that carries a trace context is always traced (the producer's sampler decided); one
    without is traced only when `trace_root` (the caller samples), as spans cost ~20 us each.
    """
    event = InferenceRequested.model_validate_json(record.value)
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
    occurred = event.occurred_at.timestamp()
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
    deadline = None if event.deadline is None else now + (event.deadline.timestamp() - wall)
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
        ticket=ticket,
    )


def ticket(request: Pending) -> Ticket:
    """The shell's ticket of a request read by `read_request`."""
    found: Ticket = request.ticket
    return found


def context_of(span: Span) -> Any:
    """A context whose current span is `span` (to parent children or inject headers)."""
    return trace.set_span_in_context(span)
