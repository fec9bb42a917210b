"""Publishing results: one per request, traced, appended without waiting; its ack frees the offset.

A result is retried until Kafka acknowledges it (with backoff, through broker outages), so a
partition's commits never freeze on a failed send. A result that can never be sent as it is
turns into one that can: too large -> `failed` without the text; refused topic -> the shared
results topic with the reason. Results carry an event id derived from the request id, so a
consumer that dedupes by `event_id` or `request_id` is safe even against a crash's re-run.
"""

from __future__ import annotations

import base64
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaProducer
from opentelemetry import propagate
from opentelemetry.trace import SpanKind, Tracer

from services.router.adapters.delivery import Delivery, Outgoing
from services.router.adapters.metrics import LabelBudget, RouterMetrics
from services.router.adapters.reply_topics import ReplyTopics
from services.router.domain.batching import Batch
from services.router.domain.demand import DemandWindow
from services.router.domain.offsets import OffsetTracker
from services.router.domain.requests import Pending
from services.router.hotpath.records import Ticket, Unreadable, context_of, ticket
from shared.events import DEADLETTER, INFERENCE_RESULTS, DeadLettered, Event, InferenceCompleted, ResultStatus, Timings

log = logging.getLogger(__name__)

RESULT_IDS = uuid.UUID("5b0c1d4e-8a43-4c55-9a7e-3f1f3f0e2a10")  # namespace of result event ids
DEADLETTER_PAYLOAD_MAX = 256 * 1024  # bytes of the record kept in its dead letter


def result_event_id(request_id: str) -> uuid.UUID:
    """The same event id for every result of one request id (re-runs are recognisable)."""
    return uuid.uuid5(RESULT_IDS, request_id)


class ResultSink:
    """Builds and sends results, dead letters and other events on the router's producer."""

    def __init__(
        self,
        tracer: Tracer,
        metrics: RouterMetrics,
        tracker: OffsetTracker,
        demand: DemandWindow,
        source: str,
        on_failure: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.tracer = tracer
        self._metrics = metrics
        self._tracker = tracker
        self._demand = demand
        self._source = source
        self._counters: dict[tuple[str, str], Any] = {}
        self.labels = LabelBudget(1_000)
        self._reply_topics = ReplyTopics()
        self.delivery = Delivery(tracker, on_failure)

    @property
    def producer(self) -> AIOKafkaProducer:
        """The producer results go out on."""
        return self.delivery.producer

    @producer.setter
    def producer(self, producer: AIOKafkaProducer) -> None:
        self.delivery.producer = producer

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
    ) -> None:
        """Send the request's one result and close its trace (nothing when another replica owns it now)."""
        t = ticket(request)
        if t.abandoned:
            t.span.end()
            return
        topic = INFERENCE_RESULTS.name
        if t.reply_topic:
            if await self._reply_topics.exists(self.producer, t.reply_topic):
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
                queued_ms=t.queued_ms, batched_ms=t.batched_ms, inference_ms=inference_ms, total_ms=max(total_ms, 0.0)
            ),
        )
        headers: dict[str, str] = {}
        span = None
        if t.span.is_recording():
            # start_span + explicit context: cheaper than attaching a current span per row.
            span = self.tracer.start_span(
                f"{topic} publish",
                context=context_of(t.span),
                kind=SpanKind.PRODUCER,
                attributes={"llmfleet.status": status.value},
            )
            propagate.inject(headers, context=context_of(span))
        # Counted before it is sent: a client must never see a result that no demand window holds yet.
        self._account(request, status, tokens, inference_ms, result.timings)
        await self.delivery.send(Outgoing(topic, result, request.request_id, headers, t))
        if span is not None:
            span.end()
        if reason:
            t.span.set_attribute("llmfleet.reason", reason)
        t.span.end()

    async def refuse(self, record: Any, unreadable: Unreadable, reply_topic: str | None) -> None:
        """An invalid request: keep the record as a dead letter and, when its id is readable, reject it.

        The request's offset is freed by its outcome's acknowledgement: the result when there is
        one (the letter is a copy for operators), else the letter.
        """
        partition = (record.topic, record.partition)
        letter_ticket = Ticket(partition, record.offset, _no_span(), None, time.time(), time.monotonic(), 0.0)
        letter_ticket.epoch = self._tracker.epoch(partition)
        if unreadable.request_id is None:
            await self.delivery.send(
                Outgoing(DEADLETTER.name, self._letter(record, unreadable.reason), record.topic, {}, letter_ticket)
            )
            return
        await self.delivery.send(
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
        if reply_topic and await self._reply_topics.exists(self.producer, reply_topic):
            topic = reply_topic
        await self.delivery.send(Outgoing(topic, result, unreadable.request_id, {}, letter_ticket))
        self._count(unreadable.model_id or "_unknown", ResultStatus.REJECTED)

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

    def _count(self, model_id: str, status: ResultStatus) -> None:
        key = (self.labels.label(model_id), status.value)
        counter = self._counters.get(key)
        if counter is None:  # labels() resolves the child each call; rows of one model reuse it
            counter = self._counters[key] = self._metrics.requests.labels(*key)
        counter.inc()

    def _account(
        self, request: Pending, status: ResultStatus, tokens: tuple[int, int], inf_ms: float, t: Timings
    ) -> None:
        self._count(request.model_id, status)
        self._demand.record(request.model_id, request.region, status.value, tokens[0], tokens[1], t.total_ms)
        if status is ResultStatus.OK:
            self._metrics.latency.observe(t.total_ms / 1000)
            overhead_ms = t.total_ms - t.queued_ms - t.batched_ms - inf_ms
            self._metrics.overhead.observe(max(0.0, overhead_ms) / 1000)

    def epoch(self, record: Any) -> int:
        """The assignment of the record's partition it was read under."""
        return self._tracker.epoch((record.topic, record.partition))

    def settled_before(self, record: Any) -> None:
        """The record's request was answered before (by a crashed owner): free its offset, send nothing."""
        self._tracker.done((record.topic, record.partition), record.offset)
        self._metrics.repeats_skipped.inc()

    def received(self, record: Any) -> bool:
        """A request record was read: False when an earlier owner already answered it (skip it)."""
        return self._tracker.received((record.topic, record.partition), record.offset)

    def batch_sent(self, batch: Batch) -> None:
        """Count a batch going out (metrics and the demand window)."""
        self._metrics.batch_size.observe(len(batch.requests))
        self._demand.record_batch(batch.model_id, batch.requests[0].region)

    async def event(self, topic: str, event: Event, key: str) -> None:
        """Send any other event (demand windows, model requests); not tied to a request offset."""
        await self.delivery.send(Outgoing(topic, event, key, {}, None))


def _no_span() -> Any:
    from opentelemetry import trace

    return trace.INVALID_SPAN
