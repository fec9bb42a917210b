"""The gateway's Kafka side: requests out to the router, results back from this replica's own reply topic."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Tracer
from pydantic import ValidationError

from shared.broker import ensure_topics
from shared.events import InferenceCompleted, InferenceRequested, Topic
from shared.events.inference import InferenceChunk
from shared.kafka_security import PLAINTEXT, KafkaSecurity

log = logging.getLogger(__name__)
# The router's Delivery names each record's event type in a header: chunks are told apart unparsed.
CHUNK_HEADER = ("event-type", b"InferenceChunk")


class Bridge:
    """Sends `InferenceRequested` and resolves each waiting call with its `InferenceCompleted`, by request id."""

    def __init__(
        self,
        bootstrap: str,
        requests_topic: str,
        reply_topic: str,
        partitions: int,
        tracer: Tracer | None = None,
        security: KafkaSecurity = PLAINTEXT,
    ) -> None:
        self.requests_topic = requests_topic
        self.reply = Topic(reply_topic, partitions, (InferenceCompleted, InferenceChunk))
        self.reply_topic = reply_topic
        self._bootstrap = bootstrap
        self._security = security
        self._tracer = tracer
        self._waiting: dict[str, asyncio.Future[InferenceCompleted]] = {}
        self._listening: dict[str, Callable[[InferenceChunk], None]] = {}  # streamed calls' chunk sinks
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self.connected = False

    async def start(self) -> None:
        """Create the reply topic, connect, and read it from its end (so no result sent after this is missed)."""
        await ensure_topics(self._bootstrap, (self.reply,), self._security)
        options = self._security.client_options()
        self._producer = AIOKafkaProducer(bootstrap_servers=self._bootstrap, acks="all", linger_ms=1, **options)
        self._consumer = AIOKafkaConsumer(bootstrap_servers=self._bootstrap, enable_auto_commit=False, **options)
        await self._producer.start()
        await self._consumer.start()
        partitions = [TopicPartition(self.reply.name, p) for p in range(self.reply.partitions)]
        self._consumer.assign(partitions)
        await self._consumer.seek_to_end(*partitions)
        for tp in partitions:
            await self._consumer.position(tp)  # resolved now, before the first request goes out
        self.connected = True

    async def send(self, request: InferenceRequested) -> asyncio.Future[InferenceCompleted]:
        """Produce `request` (its reply topic is ours); the future its result will resolve."""
        if self._producer is None:
            raise RuntimeError("the bridge is not started")
        future: asyncio.Future[InferenceCompleted] = asyncio.get_running_loop().create_future()
        self._waiting[request.request_id] = future
        try:
            delivery = await self._producer.send(
                self.requests_topic,
                request.model_dump_json().encode(),
                key=request.request_id.encode(),
                headers=self._trace_headers(),
            )
        except Exception as error:
            self._waiting.pop(request.request_id, None)
            raise ConnectionError(f"the request could not be queued: {error!r}") from error
        delivery.add_done_callback(lambda d: self._delivered(request.request_id, d))
        return future

    def _trace_headers(self) -> list[tuple[str, bytes]] | None:
        """A producer span under the call's span, its traceparent on the record (the router continues it)."""
        current = trace.get_current_span()
        if self._tracer is None or not current.is_recording():
            return None
        span = self._tracer.start_span(f"{self.requests_topic} publish", kind=SpanKind.PRODUCER)
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(span))
        span.end()
        return [(k, v.encode()) for k, v in carrier.items()]

    def _delivered(self, request_id: str, delivery: asyncio.Future[object]) -> None:
        """A request the broker refused never gets a result: fail its caller now."""
        error = None if delivery.cancelled() else delivery.exception()
        future = self._waiting.get(request_id)
        if error is not None and future is not None and not future.done():
            future.set_exception(ConnectionError(f"the request was not delivered: {error!r}"))

    def forget(self, request_id: str) -> None:
        """The caller stopped waiting (a timeout): a late result for it is dropped."""
        self._waiting.pop(request_id, None)

    def listen(self, request_id: str, on_chunk: Callable[[InferenceChunk], None]) -> None:
        """Hand the request's chunks to `on_chunk` as they come (until its result, or `unlisten`)."""
        self._listening[request_id] = on_chunk

    def unlisten(self, request_id: str) -> None:
        """Stop handing the request's chunks on (the stream ended, or its client went away)."""
        self._listening.pop(request_id, None)

    @property
    def waiting(self) -> int:
        """Requests sent and not answered yet."""
        return len(self._waiting)

    async def run(self) -> None:
        """Read results for ever, each resolving the call that waits for it (others are dropped)."""
        consumer = self._consumer
        if consumer is None:
            raise RuntimeError("the bridge is not started")
        while True:
            batches = await consumer.getmany(timeout_ms=500, max_records=2000)
            for records in batches.values():
                for record in records:
                    self._resolve(record.value or b"", record.headers)

    def _resolve(self, value: bytes, headers: Sequence[tuple[str, bytes]] = ()) -> None:
        if CHUNK_HEADER in headers:
            self._chunk(value)
            return
        try:
            result = InferenceCompleted.model_validate_json(value)
        except ValidationError:
            log.warning("unreadable record on %s dropped", self.reply.name)
            return
        future = self._waiting.pop(result.request_id, None)
        if self._listening:
            self._listening.pop(result.request_id, None)
        if future is not None and not future.done():
            future.set_result(result)

    def _chunk(self, value: bytes) -> None:
        """A streamed request's chunk to its listener; nobody listening (a timeout, a gone client): dropped."""
        if not self._listening:
            return
        try:
            chunk = InferenceChunk.model_validate_json(value)
        except ValidationError:
            log.warning("unreadable chunk on %s dropped", self.reply.name)
            return
        if (listener := self._listening.get(chunk.request_id)) is not None:
            listener(chunk)

    async def stop(self, delete_topic: bool) -> None:
        """Disconnect; delete the reply topic when asked (a graceful stop: nobody waits on it now)."""
        self.connected = False
        for client in (self._producer, self._consumer):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.stop()
        if delete_topic:
            admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap, **self._security.client_options())
            await admin.start()
            try:
                with contextlib.suppress(Exception):
                    await admin.delete_topics([self.reply.name])
            finally:
                await admin.close()
