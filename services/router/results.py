"""Publishing results: one per request, traced, appended without waiting; its ack frees the offset."""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from typing import Any

from aiokafka import AIOKafkaProducer
from opentelemetry import propagate
from opentelemetry.trace import SpanKind, Tracer

from services.router.adapters.metrics import RouterMetrics
from services.router.adapters.reply_topics import ReplyTopics
from services.router.domain.batching import Batch
from services.router.domain.demand import DemandWindow
from services.router.domain.offsets import OffsetTracker, Partition
from services.router.domain.requests import Pending
from services.router.intake import context_of, ticket
from shared.events import DEADLETTER, INFERENCE_RESULTS, DeadLettered, Event, InferenceCompleted, ResultStatus, Timings

log = logging.getLogger(__name__)


class ResultSink:
    """Builds and sends results, dead letters and other events on the router's producer."""

    producer: AIOKafkaProducer  # set when the hot path starts (aiokafka needs the running loop)

    def __init__(
        self,
        tracer: Tracer,
        metrics: RouterMetrics,
        tracker: OffsetTracker,
        demand: DemandWindow,
        source: str,
    ) -> None:
        self.tracer = tracer
        self._metrics = metrics
        self._tracker = tracker
        self._demand = demand
        self._source = source
        self._counters: dict[tuple[str, str], Any] = {}
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
    ) -> None:
        """Send the request's one result and close its trace."""
        t = ticket(request)
        topic = INFERENCE_RESULTS.name
        if t.reply_topic:
            if await self._reply_topics.exists(self.producer, t.reply_topic):
                topic = t.reply_topic
            else:  # the result must go somewhere: the shared results topic, saying why
                missing = f"reply topic {t.reply_topic} does not exist; result sent to {topic}"
                reason = f"{reason}; {missing}" if reason else missing
        total_ms = (time.time() - t.occurred_at) * 1000
        result = InferenceCompleted(
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
        await self._send(topic, result, request.request_id, headers, t.partition, t.offset)
        if span is not None:
            span.end()
        if reason:
            t.span.set_attribute("llmfleet.reason", reason)
        t.span.end()
        self._account(request, status, tokens, inference_ms, result.timings)

    def _account(
        self, request: Pending, status: ResultStatus, tokens: tuple[int, int], inf_ms: float, t: Timings
    ) -> None:
        key = (request.model_id, status.value)
        counter = self._counters.get(key)
        if counter is None:  # labels() resolves the child each call; rows of one model reuse it
            counter = self._counters[key] = self._metrics.requests.labels(*key)
        counter.inc()
        self._demand.record(request.model_id, request.region, status.value, tokens[0], tokens[1], t.total_ms)
        if status is ResultStatus.OK:
            self._metrics.latency.observe(t.total_ms / 1000)
            overhead_ms = t.total_ms - t.queued_ms - t.batched_ms - inf_ms
            self._metrics.overhead.observe(max(0.0, overhead_ms) / 1000)

    def tracker_received(self, record: Any) -> None:
        """A request record was read: its offset stays open until its result is acknowledged."""
        self._tracker.received((record.topic, record.partition), record.offset)

    def batch_sent(self, batch: Batch) -> None:
        """Count a batch going out (metrics and the demand window)."""
        self._metrics.batch_size.observe(len(batch.requests))
        self._demand.record_batch(batch.model_id, batch.requests[0].region)

    async def dead_letter(self, record: Any, reason: str) -> None:
        """Keep an unreadable request on the dead-letter topic; its offset is freed once that is acked."""
        letter = DeadLettered(
            source=self._source,
            reason=reason[:2000],
            consumer=self._source,
            source_topic=record.topic,
            source_partition=record.partition,
            source_offset=record.offset,
            payload_b64=base64.b64encode(record.value or b"").decode(),
        )
        await self._send(DEADLETTER.name, letter, record.topic, {}, (record.topic, record.partition), record.offset)

    async def event(self, topic: str, event: Event, key: str) -> None:
        """Send any other event (demand windows, model requests); not tied to a request offset."""
        await self._send(topic, event, key, {}, None, 0)

    async def _send(
        self, topic: str, event: Event, key: str, headers: dict[str, str], partition: Partition | None, offset: int
    ) -> None:
        wire = [("content-type", b"application/json"), ("event-type", type(event).__name__.encode())]
        wire += [(k, v.encode()) for k, v in headers.items()]
        try:
            delivery = await self.producer.send(topic, event.model_dump_json().encode(), key=key.encode(), headers=wire)
        except Exception as error:  # never end a batch or the consume loop; the offset stays open
            log.error("could not send %s to %s: %r", type(event).__name__, topic, error)
            return
        if partition is not None:
            delivery.add_done_callback(lambda f: self._delivered(f, partition, offset))

    def _delivered(self, future: asyncio.Future[Any], partition: Partition, offset: int) -> None:
        if future.cancelled() or future.exception() is not None:
            # The offset stays open, so it is never committed: a restart delivers the request again.
            log.error("result for %s@%s not delivered: %r", partition, offset, future.exception())
            return
        self._tracker.done(partition, offset)
