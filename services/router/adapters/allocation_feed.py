"""The allocation topic read as a log: no consumer group, every partition from its beginning, then live.

A group would hand each replica only its share of the partitions and remember where it stopped;
the registry needs every event, from the first, in every process, so the reader assigns all
partitions itself and never commits.
"""

from __future__ import annotations

import heapq
import logging
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import ValidationError

from shared.events import ALLOCATIONS, Event, Topic
from shared.kafka_security import PLAINTEXT, KafkaSecurity

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Fed:
    """One event of the topic; `replayed` when it was already there when the reader started."""

    event: Event
    replayed: bool


class AllocationFeed:
    """Reads every event of the topic in partition order, from the oldest kept, then follows it."""

    _consumer: AIOKafkaConsumer

    def __init__(
        self,
        bootstrap: str,
        client_id: str,
        topic: Topic = ALLOCATIONS,
        poll_ms: int = 500,
        security: KafkaSecurity = PLAINTEXT,
    ) -> None:
        self.topic = topic
        self._security = security
        self.targets: dict[TopicPartition, int] = {}
        self._adapter = topic.adapter()
        self._poll_ms = poll_ms
        self._bootstrap, self._client_id = bootstrap, client_id

    async def start(self) -> None:
        """Connect, take every partition, go to the beginning and note the end offsets to catch up to."""
        partitions = await self._partitions()
        # aiokafka clients bind to the running loop, so the consumer is made here, not in __init__.
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            client_id=self._client_id,
            **self._security.client_options(),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",  # a position trimmed away by retention restarts at the oldest kept
        )
        await self._consumer.start()
        try:
            self._consumer.assign(partitions)
            await self._consumer.seek_to_beginning(*partitions)
            self.targets = await self._consumer.end_offsets(partitions)
        except BaseException:
            await self._consumer.stop()
            raise

    async def _partitions(self) -> list[TopicPartition]:
        """Every partition of the topic, as the cluster has it now (not the count in shared.events)."""
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self._bootstrap, client_id=self._client_id, **self._security.client_options()
        )
        await admin.start()
        try:
            described = await admin.describe_topics([self.topic.name])
        finally:
            await admin.close()
        numbers = sorted(p["partition"] for d in described if d["topic"] == self.topic.name for p in d["partitions"])
        if not numbers:
            raise RuntimeError(f"topic {self.topic.name} does not exist (create the platform's topics first)")
        return [TopicPartition(self.topic.name, n) for n in numbers]

    async def next_batch(self) -> list[Fed]:
        """The next events (possibly none, after a poll interval): each partition's in order, merged by time."""
        batches = await self._consumer.getmany(timeout_ms=self._poll_ms)
        # Events of one server may sit in different partitions (keys are model ids): a replay that
        # took partition after partition could put a release before its allocation. Merging by
        # record time keeps each partition's order and puts the fetched partitions in time order.
        merged = heapq.merge(*batches.values(), key=lambda record: record.timestamp)
        fed: list[Fed] = []
        for record in merged:
            try:
                event = self._adapter.validate_json(record.value or b"")
            except ValidationError as error:
                # Replayed at every start, so it is logged, not dead-lettered again each time.
                log.warning(
                    "skipping unreadable allocation event %s/%s@%s: %s",
                    record.topic,
                    record.partition,
                    record.offset,
                    error,
                )
                continue
            target = self.targets.get(TopicPartition(record.topic, record.partition), 0)
            fed.append(Fed(event, record.offset < target))
        return fed

    async def replayed_all(self) -> bool:
        """True when every partition has been read up to its end offset at start."""
        for tp, end in self.targets.items():
            if await self._consumer.position(tp) < end:
                return False
        return True

    async def stop(self) -> None:
        """Disconnect (there is nothing to commit)."""
        await self._consumer.stop()
