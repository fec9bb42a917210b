"""The Batch API's Kafka side: batch lines out to the router, results in from a topic every replica shares.

Results of batch lines go to one reply topic (`batch_reply_topic`), read by a consumer group of
all gateway replicas, not to a replica's own topic. A line's result is written to its row by
whichever replica reads it, so it reaches the batch whoever runs the batch now, and a result
that arrives while no gateway runs waits in Kafka for the group. Offsets are committed after the
rows are written (at least once; a repeat finds its line answered and changes nothing).
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Awaitable, Callable, Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pydantic import ValidationError

from shared.broker import ensure_topics
from shared.events import DEADLETTER, DeadLettered, InferenceCompleted, InferenceRequested, Topic
from shared.kafka_security import PLAINTEXT, KafkaSecurity

log = logging.getLogger(__name__)
MAX_RECORDS = 500
RECORD_TRIES = 30  # about a minute of database outage; then the process ends loudly, offsets uncommitted


class BatchLink:
    """Produces batch lines and consumes their results as a group (`run(record_results)`)."""

    def __init__(
        self,
        bootstrap: str,
        requests_topic: str,
        reply_topic: str,
        partitions: int,
        group: str,
        security: KafkaSecurity = PLAINTEXT,
    ) -> None:
        self.requests_topic = requests_topic
        self._security = security
        self.reply_topic = reply_topic
        self._reply = Topic(reply_topic, partitions, (InferenceCompleted,))
        self._bootstrap = bootstrap
        self._group = group
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        """Create the batch reply topic and connect the producer."""
        await ensure_topics(self._bootstrap, (self._reply, DEADLETTER), self._security)
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap, acks="all", linger_ms=5, **self._security.client_options()
        )
        await self._producer.start()

    async def stop(self) -> None:
        """Flush and disconnect the producer."""
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def send(self, requests: Sequence[InferenceRequested]) -> None:
        """Produce every request and wait until the broker has them all (an error is raised: sent again later)."""
        if self._producer is None:
            raise RuntimeError("the batch link is not started")
        deliveries = [
            await self._producer.send(self.requests_topic, r.model_dump_json().encode(), key=r.request_id.encode())
            for r in requests
        ]
        for delivery in deliveries:
            await delivery

    async def run(self, record: Callable[[list[InferenceCompleted]], Awaitable[object]]) -> None:
        """Read results for ever as the group's member; each poll's results recorded, then committed."""
        consumer = AIOKafkaConsumer(
            self.reply_topic,
            bootstrap_servers=self._bootstrap,
            **self._security.client_options(),
            group_id=self._group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",  # results sent before this group first read the topic count too
        )
        await consumer.start()
        try:
            while True:
                batches = await consumer.getmany(timeout_ms=500, max_records=MAX_RECORDS)
                results: list[InferenceCompleted] = []
                for partition, records in batches.items():
                    for r in records:
                        try:
                            results.append(InferenceCompleted.model_validate_json(r.value or b""))
                        except ValidationError as error:
                            await self._dead_letter(r.value or b"", f"unreadable result: {error}", partition, r.offset)
                if results:
                    await _recorded(record, results)
                if batches:
                    await consumer.commit()
        finally:
            await consumer.stop()

    async def _dead_letter(self, payload: bytes, reason: str, partition: object, offset: int) -> None:
        """Keep an unreadable record on the dead-letter topic with the reason; the loop goes on."""
        log.warning("dead-lettering a record of %s at %d: %s", self.reply_topic, offset, reason[:200])
        if self._producer is None:
            return
        letter = DeadLettered(
            source="gateway",
            reason=reason[:2000],
            consumer=self._group,
            source_topic=self.reply_topic,
            source_partition=int(getattr(partition, "partition", 0)),
            source_offset=offset,
            payload_b64=base64.b64encode(payload[:16384]).decode(),
        )
        try:
            await (await self._producer.send(DEADLETTER.name, letter.model_dump_json().encode()))
        except Exception as error:  # an unreadable record must never stop the results loop
            log.error("record of %s at %d not dead-lettered (%r); skipped", self.reply_topic, offset, error)


async def _recorded(
    record: Callable[[list[InferenceCompleted]], Awaitable[object]], results: list[InferenceCompleted]
) -> None:
    """Record a poll's results, trying again through a short database outage (nothing is committed before)."""
    for attempt in range(1, RECORD_TRIES + 1):
        try:
            await record(results)
            return
        except Exception as error:
            if attempt == RECORD_TRIES:
                raise
            log.warning("batch results not recorded (%r); trying again", error)
            await asyncio.sleep(min(0.1 * 2**attempt, 2.0))
