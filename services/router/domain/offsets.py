"""Which request offsets may be committed: only those whose results (and all earlier ones) are out.

Results finish out of order (batches of different models), so a partition's committable offset is
its lowest still-open offset. A crash re-delivers the open ones: duplicates, never losses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

Partition = tuple[str, int]


@dataclass
class OffsetTracker:
    """Open offsets per partition, and the next offset after the highest one seen."""

    open: dict[Partition, set[int]] = field(default_factory=dict)
    next_offset: dict[Partition, int] = field(default_factory=dict)
    committed: dict[Partition, int] = field(default_factory=dict)

    def received(self, partition: Partition, offset: int) -> None:
        """A record was read; it stays open until `done`."""
        self.open.setdefault(partition, set()).add(offset)
        self.next_offset[partition] = max(self.next_offset.get(partition, 0), offset + 1)

    def done(self, partition: Partition, offset: int) -> None:
        """The record's result was acknowledged by Kafka."""
        self.open.get(partition, set()).discard(offset)

    def committable(self) -> dict[Partition, int]:
        """Offsets to commit now (Kafka's "next to read"), only where they moved on."""
        out: dict[Partition, int] = {}
        for partition, end in self.next_offset.items():
            pending = self.open.get(partition)
            position = min(pending) if pending else end
            if position > self.committed.get(partition, -1):
                out[partition] = position
        return out

    def mark_committed(self, offsets: dict[Partition, int]) -> None:
        """Remember what Kafka has accepted."""
        self.committed.update(offsets)

    def forget(self, partitions: list[Partition]) -> None:
        """Drop partitions this consumer no longer owns (after a rebalance)."""
        for partition in partitions:
            self.open.pop(partition, None)
            self.next_offset.pop(partition, None)
            self.committed.pop(partition, None)

    def pending(self) -> int:
        """Records read whose results are not acknowledged yet."""
        return sum(len(offsets) for offsets in self.open.values())
