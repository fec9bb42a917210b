"""Publishing results and dead letters: one result per request, traced, appended without waiting.

Records go out through `Delivery`: retried until Kafka acknowledges them (with backoff, through
broker outages), so a partition's commits never freeze on a failed send, and the acknowledgement
frees the request's offset. A result that can never be sent as it is turns into one that can:
too large -> `failed` without the text; refused topic -> the shared results topic with the
reason. Results carry an event id derived from the request id, so a consumer that dedupes by
`event_id` or `request_id` is safe even against a crash's re-run. Offsets are not tracked here.
"""

from __future__ import annotations

import base64
import time
import uuid
from typing import Any

from opentelemetry import propagate
from opentelemetry.trace import SpanKind, Tracer

from services.router.adapters.delivery import Delivery, Outgoing
from services.router.adapters.reply_topics import ReplyTopics
from services.router.domain.requests import Pending
from services.router.hotpath.accounting import Accounting
from services.router.hotpath.records import Ticket, Unreadable, context_of, ticket
from shared.events import DEADLETTER, INFERENCE_RESULTS, DeadLettered, Event, InferenceCompleted, ResultStatus, Timings
from shared.events.inference import InferenceChunk

RESULT_IDS = uuid.UUID("5b0c1d4e-8a43-4c55-9a7e-3f1f3f0e2a10")  # namespace of result event ids
DEADLETTER_PAYLOAD_MAX = 256 * 1024  # bytes of the record kept in its dead letter


def result_event_id(request_id: str) -> uuid.UUID:
    """The same event id for every result of one request id (re-runs are recognisable)."""
    return uuid.uuid5(RESULT_IDS, request_id)


class ResultPublisher:
    """Builds results, dead letters and other events, and hands them to the delivery; counts each result."""

    def __init__(self, delivery: Delivery, accounting: Accounting, tracer: Tracer, source: str) -> None:
        self._delivery = delivery
        self._accounting = accounting
        self._tracer = tracer
        self._source = source
        self._reply_topics = ReplyTopics()

    async def publish(
        self,
        request: Pending,
        status: ResultStatus,
        *,
        text: str = "",
        reason: str | None = None,
        server_id: str | None = None,
        tokens: tuple[int, int] = (0, 0),
        inference_ms: float = 0.0,
        first_token_ms: float | None = None,
    ) -> None:
        """Send the request's one result and close its trace (nothing when another replica owns it now)."""
        t = ticket(request)
        if t.abandoned:
            t.span.end()
            return
        topic = INFERENCE_RESULTS.name
        if t.reply_topic:
            if await self._reply_topics.exists(self._delivery.producer, t.reply_topic):
                topic = t.reply_topic
            else:  # the result must go somewhere: the shared results topic, saying why
                missing = f"reply topic {t.reply_topic} does not exist; result sent to {topic}"
                reason = f"{reason}; {missing}" if reason else missing
        total_ms = (time.time() - t.occurred_at) * 1000
        result = InferenceCompleted(
            event_id=result_event_id(request.request_id),
            source=self._source,
            request_id=request.request_id,
            model_id=request.model_id,
            status=status,
            text=text,
            reason=reason,
            server_id=server_id,
            tokens_in=tokens[0],
            tokens_out=tokens[1],
            timings=Timings(
                queued_ms=t.queued_ms,
                batched_ms=t.batched_ms,
                inference_ms=inference_ms,
                total_ms=max(total_ms, 0.0),
                first_token_ms=first_token_ms,
            ),
        )
        headers: dict[str, str] = {}
        span = None
        if t.span.is_recording():
            # start_span + explicit context: cheaper than attaching a current span per row.
            span = self._tracer.start_span(
                f"{topic} publish",
                context=context_of(t.span),
                kind=SpanKind.PRODUCER,
                attributes={"llmfleet.status": status.value},
            )
            propagate.inject(headers, context=context_of(span))
        # Counted before it is sent: a client must never see a result that no demand window holds yet.
        self._accounting.result(request, status, tokens, inference_ms, result.timings)
        await self._delivery.send(Outgoing(topic, result, request.request_id, headers, t))
        if span is not None:
            span.end()
        if reason:
            t.span.set_attribute("llmfleet.reason", reason)
        t.span.end()

    async def chunk(self, request: Pending, index: int, text: str, tokens_out: int) -> None:
        """Forward part of a streamed request's text to its reply topic, keyed (so ordered) by request id.

        Best effort: no span, no accounting, no offset; the one result still follows with the
        whole text. A request without a reply topic, or one another replica owns now, gets none.
        """
        t = ticket(request)
        if t.abandoned or not t.reply_topic:
            return
        if not await self._reply_topics.exists(self._delivery.producer, t.reply_topic):
            return
        event = InferenceChunk(
            source=self._source,
            request_id=request.request_id,
            model_id=request.model_id,
            index=index,
            text=text,
            tokens_out=tokens_out,
        )
        await self._delivery.send(Outgoing(t.reply_topic, event, request.request_id, {}, None))

    async def refuse(self, record: Any, unreadable: Unreadable, reply_topic: str | None, letter_ticket: Ticket) -> None:
        """An invalid request: keep the record as a dead letter and, when its id is readable, reject it.

        The request's offset (`letter_ticket`) is freed by its outcome's acknowledgement: the result
        when there is one (the letter is a copy for operators), else the letter.
        """
        if unreadable.request_id is None:
            await self._delivery.send(
                Outgoing(DEADLETTER.name, self._letter(record, unreadable.reason), record.topic, {}, letter_ticket)
            )
            return
        await self._delivery.send(
            Outgoing(DEADLETTER.name, self._letter(record, unreadable.reason), record.topic, {}, None)
        )
        result = InferenceCompleted(
            event_id=result_event_id(unreadable.request_id),
            source=self._source,
            request_id=unreadable.request_id,
            model_id=unreadable.model_id or "",
            status=ResultStatus.REJECTED,
            reason=f"invalid request: {unreadable.reason}"[:2000],
        )
        topic = INFERENCE_RESULTS.name
        if reply_topic and await self._reply_topics.exists(self._delivery.producer, reply_topic):
            topic = reply_topic
        await self._delivery.send(Outgoing(topic, result, unreadable.request_id, {}, letter_ticket))
        self._accounting.count(unreadable.model_id or "_unknown", ResultStatus.REJECTED)

    def _letter(self, record: Any, reason: str) -> DeadLettered:
        payload = record.value or b""
        if len(payload) > DEADLETTER_PAYLOAD_MAX:
            reason = f"{reason[:1500]} (payload truncated to {DEADLETTER_PAYLOAD_MAX} of {len(payload)} bytes)"
            payload = payload[:DEADLETTER_PAYLOAD_MAX]
        return DeadLettered(
            source=self._source,
            reason=reason[:2000],
            consumer=self._source,
            source_topic=record.topic,
            source_partition=record.partition,
            source_offset=record.offset,
            payload_b64=base64.b64encode(payload).decode(),
        )

    async def event(self, topic: str, event: Event, key: str) -> None:
        """Send any other event (demand windows, model requests); not tied to a request offset."""
        await self._delivery.send(Outgoing(topic, event, key, {}, None))
