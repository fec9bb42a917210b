"""The allocation topic read as a log: no consumer group, every partition from its beginning, then live.

A group would hand each replica only its share of the partitions and remember where it stopped;
the registry needs every event, from the first, in every process, so the reader assigns all
partitions itself and never commits.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from shared.events import ALLOCATIONS, Event, Topic

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Fed:
    """One event of the topic; `replayed` when it was already there when the reader started."""

    event: Event
    replayed: bool


class AllocationFeed:
    """Reads every event of the topic in partition order, from the oldest kept, then follows it."""

    def __init__(self, bootstrap: str, client_id: str, topic: Topic = ALLOCATIONS, poll_ms: int = 500) -> None:
        self.topic = topic
        self.targets: dict[TopicPartition, int] = {}
        self._adapter = topic.adapter()
        self._poll_ms = poll_ms
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            client_id=client_id,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",  # a position trimmed away by retention restarts at the oldest kept
        )

    async def start(self) -> None:
        """Connect, take every partition, go to the beginning and note the end offsets to catch up to."""
        await self._consumer.start()
        try:
            await self._consumer.topics()  # loads the cluster's metadata, so the partitions are known
            numbers = self._consumer.partitions_for_topic(self.topic.name)
            if not numbers:
                raise RuntimeError(f"topic {self.topic.name} does not exist")
            partitions = [TopicPartition(self.topic.name, n) for n in sorted(numbers)]
            self._consumer.assign(partitions)
            await self._consumer.seek_to_beginning(*partitions)
            self.targets = await self._consumer.end_offsets(partitions)
        except BaseException:
            await self._consumer.stop()
            raise

    async def next_batch(self) -> list[Fed]:
        """The next events (possibly none, after a poll interval), each partition's in order."""
        batches = await self._consumer.getmany(timeout_ms=self._poll_ms)
        fed: list[Fed] = []
        for tp, records in batches.items():
            target = self.targets.get(tp, 0)
            for record in records:
                try:
                    event = self._adapter.validate_json(record.value or b"")
                except ValidationError as error:
                    # Replayed at every start, so it is logged, not dead-lettered again each time.
                    log.warning(
                        "skipping unreadable allocation event %s/%s@%s: %s",
                        tp.topic,
                        tp.partition,
                        record.offset,
                        error,
                    )
                    continue
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
