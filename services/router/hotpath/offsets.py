"""Offsets of the hot path: which requests are owed a result, and commits that tell the next owner.

The shell of `domain/offsets.py` for Kafka records and the consumer. A record read opens its
offset; its outcome's acknowledgement (or a crashed owner's result, found again) closes it. A
commit goes up to the first open offset and carries a note of the answered offsets after it;
a new owner reads the note back at assignment and skips what it lists.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from services.router.adapters.kafka_io import committed_offsets
from services.router.adapters.metrics import RouterMetrics
from services.router.domain.offsets import CommitNote, OffsetTracker, Partition

Points = dict[Partition, tuple[int, str]]


def partitions(offsets: Points) -> dict[TopicPartition, tuple[int, str]]:
    """Offsets keyed the way aiokafka wants them."""
    return {TopicPartition(topic, partition): point for (topic, partition), point in offsets.items()}


def partition_of(record: Any) -> Partition:
    """The (topic, partition) a record was read from."""
    return (record.topic, record.partition)


class Offsets:
    """One per process: the open request offsets of the partitions it owns, and their commits."""

    def __init__(self, metrics: RouterMetrics, tracker: OffsetTracker | None = None) -> None:
        self.tracker = tracker if tracker is not None else OffsetTracker()
        self._metrics = metrics

    # ------------------------------------------------------------------ records

    def received(self, record: Any) -> bool:
        """A request record was read: False when an earlier owner already answered it (skip it)."""
        return self.tracker.received(partition_of(record), record.offset)

    def settled_before(self, record: Any) -> None:
        """The record's request was answered before (by a crashed owner): free its offset, send nothing."""
        self.tracker.done(partition_of(record), record.offset)
        self._metrics.repeats_skipped.inc()

    def epoch(self, partition: Partition) -> int:
        """The partition's current assignment number (a record read now is answered under it)."""
        return self.tracker.epoch(partition)

    def current(self, partition: Partition, epoch: int) -> bool:
        """True while a record read in assignment `epoch` is still this consumer's to answer."""
        return self.tracker.current(partition, epoch)

    def done(self, partition: Partition, offset: int) -> None:
        """The record's outcome was acknowledged by Kafka."""
        self.tracker.done(partition, offset)

    def owns(self, partition: Partition) -> bool:
        """True while this consumer owns the partition (records of a revoked one are not ours to answer)."""
        return self.tracker.owns(partition)

    def pending(self, of: Iterable[Partition] | None = None) -> int:
        """Records read whose outcomes are not acknowledged yet (in the partitions `of`, or all)."""
        return self.tracker.pending(None if of is None else list(of))

    # ------------------------------------------------------------------ commits and assignments

    async def commit(self, consumer: AIOKafkaConsumer, only: set[Partition] | None = None, final: bool = False) -> None:
        """Commit each partition up to its first unanswered request, with the answered ones after it.

        `final`: this owner hands the partitions over with nothing in flight (a graceful stop or
        revocation), so the next owner need not look for results written after the commit.
        """
        offsets = self.tracker.committable(int(time.time() * 1000), final)
        if only is not None:
            self.tracker.commit_failed({p: v for p, v in offsets.items() if p not in only})  # next round
            offsets = {p: point for p, point in offsets.items() if p in only}
        if not offsets:
            return
        try:
            await consumer.commit(partitions(offsets))
        except BaseException:
            self.tracker.commit_failed(offsets)
            raise
        self.tracker.mark_committed(offsets)

    async def assign(self, consumer: AIOKafkaConsumer, assigned: list[TopicPartition]) -> dict[Partition, CommitNote]:
        """Own the partitions from their commits; the notes of those not handed over gracefully.

        A commit that is not final (a crash, a failed hand-over, another writer) may be followed
        by results its owner sent later: the caller reads those back.
        """
        committed = await committed_offsets(consumer, assigned) if assigned else {}
        unsure: dict[Partition, CommitNote] = {}
        for tp in assigned:
            point = committed.get(tp)
            offset = point.offset if point is not None and point.offset >= 0 else None
            note = self.tracker.assigned(
                (tp.topic, tp.partition), offset, point.metadata if point is not None else None
            )
            if offset is not None and not note.final:
                unsure[(tp.topic, tp.partition)] = note
        return unsure

    def commit_start(self, partition: Partition) -> int | None:
        """The committed offset the partition was assigned at (None: the group had no commit)."""
        return self.tracker.commit_start(partition)

    def forget(self, of: Iterable[Partition]) -> None:
        """Partitions that moved to another owner (remembering what this one answered, should they come back)."""
        self.tracker.forget(list(of))
