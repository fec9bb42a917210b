"""Which request offsets may be committed, and which records past the commit are already answered.

Results finish out of order (batches of different models), so a partition's committable offset is
its lowest still-open offset. Records after it may already have their results; re-reading them
after a rebalance or restart would answer them twice. So every commit carries, in Kafka's offset
metadata, which offsets between the committed one and the highest read are still unanswered (a
compressed bitmap: usually a handful, so it is cheap to build every commit), when the commit was
made, and whether it was the owner's last (a graceful hand-over). Whoever owns the partition next
reads it back and skips the answered records: a rebalance or graceful restart answers each
request exactly once. The note is capped to fit the broker's `offset.metadata.max.bytes` (4,096
by default); offsets beyond the cap count as unanswered (re-run: duplicates, never losses).
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field

Partition = tuple[str, int]

METADATA_VERSION = "d2"
METADATA_MAX_CHARS = 4_000  # under the broker's default offset.metadata.max.bytes (4,096)


@dataclass(frozen=True)
class CommitNote:
    """What a commit's metadata says: answered offsets after it, when it was made, whether it was final."""

    answered: set[int] = field(default_factory=set)
    committed_at_ms: int | None = None
    final: bool = False


def encode_note(
    start: int, end: int, unanswered: Iterable[int], now_ms: int, final: bool, max_chars: int = METADATA_MAX_CHARS
) -> str:
    """Metadata for a commit at `start`: offsets in [start, end) not listed in `unanswered` are answered."""
    holes = sorted(o for o in unanswered if start <= o < end)
    while True:
        length = max(0, end - start)
        bits = bytearray((length + 7) // 8)
        for offset in holes:
            if offset < end:
                i = offset - start
                bits[i // 8] |= 1 << (i % 8)
        packed = base64.b64encode(zlib.compress(bytes(bits), 9)).decode() if length else ""
        text = f"{METADATA_VERSION}:{now_ms}:{int(final)}:{length}:{packed}"
        if len(text) <= max_chars or length == 0:
            return text
        end = start + length // 2  # the tail counts as unanswered


def decode_note(start: int, metadata: str | None) -> CommitNote:
    """The note a commit at `start` carries; an empty one for foreign or damaged metadata."""
    if not metadata or not metadata.startswith(METADATA_VERSION + ":"):
        return CommitNote()
    try:
        _, at_ms, final, length, packed = metadata.split(":", 4)
        bits = zlib.decompress(base64.b64decode(packed)) if packed else b""
        size = min(int(length), len(bits) * 8)
        answered = {start + i for i in range(size) if not bits[i // 8] >> (i % 8) & 1}
        return CommitNote(answered, int(at_ms), final == "1")
    except (ValueError, zlib.error):
        return CommitNote()


def encode_done(start: int, done: set[int], end: int, now_ms: int = 0, final: bool = False) -> str:
    """`encode_note` given the answered offsets instead of the unanswered ones."""
    return encode_note(start, end, (o for o in range(start, end) if o not in done), now_ms, final)


def decode_done(start: int, metadata: str | None) -> set[int]:
    """The answered offsets a commit at `start` recorded."""
    return decode_note(start, metadata).answered


@dataclass
class OffsetTracker:
    """Per owned partition: open offsets, the next offset after the highest read, answered ones to skip."""

    open: dict[Partition, set[int]] = field(default_factory=dict)
    next_offset: dict[Partition, int] = field(default_factory=dict)
    committed: dict[Partition, tuple[int, str]] = field(default_factory=dict)
    # Offsets at or after the committed position whose results a previous owner already sent.
    answered: dict[Partition, set[int]] = field(default_factory=dict)
    owned: set[Partition] = field(default_factory=set)
    # Bumped at each assignment: a result read under an earlier one belongs to another owner now.
    epochs: dict[Partition, int] = field(default_factory=dict)
    # Offsets this consumer answered in partitions it lost: if one comes back (a rebalance after a
    # broker outage often returns the same partitions, while its commit failed), they are skipped.
    remembered: dict[Partition, set[int]] = field(default_factory=dict)
    first_read: dict[Partition, int] = field(default_factory=dict)
    assigned_at: dict[Partition, int | None] = field(default_factory=dict)
    # Changed since their last commit point was computed (so idle partitions cost nothing).
    dirty: set[Partition] = field(default_factory=set)

    def assigned(self, partition: Partition, committed: int | None, metadata: str | None) -> CommitNote:
        """This consumer owns the partition from now; skip what the commit's metadata says is answered."""
        self.owned.add(partition)
        self.epochs[partition] = self.epochs.get(partition, 0) + 1
        self.open.pop(partition, None)
        self.next_offset.pop(partition, None)
        self.committed.pop(partition, None)
        self.first_read.pop(partition, None)
        self.assigned_at[partition] = committed
        note = decode_note(committed, metadata) if committed is not None else CommitNote()
        mine = self.remembered.pop(partition, set())
        self.answered[partition] = note.answered | {o for o in mine if committed is None or o >= committed}
        return note

    def commit_start(self, partition: Partition) -> int | None:
        """The committed offset the partition was assigned at (None: the group had no commit)."""
        return self.assigned_at.get(partition)

    def epoch(self, partition: Partition) -> int:
        """The partition's current assignment number."""
        return self.epochs.get(partition, 0)

    def current(self, partition: Partition, epoch: int) -> bool:
        """True when a record read in assignment `epoch` is still this consumer's to answer."""
        return self.owns(partition) and self.epochs.get(partition, 0) == epoch

    def owns(self, partition: Partition) -> bool:
        """True while this consumer owns the partition (records of a revoked one are not ours to answer).

        A partition never assigned (a consumer without a group, a test) is owned.
        """
        return partition in self.owned or partition not in self.epochs

    def received(self, partition: Partition, offset: int) -> bool:
        """A record was read; False when it was already answered (skip it), else it stays open until `done`."""
        self.next_offset[partition] = max(self.next_offset.get(partition, 0), offset + 1)
        self.first_read.setdefault(partition, offset)
        self.dirty.add(partition)
        answered = self.answered.get(partition)
        if answered and offset in answered:
            answered.discard(offset)
            return False
        self.open.setdefault(partition, set()).add(offset)
        return True

    def done(self, partition: Partition, offset: int) -> None:
        """The record's result was acknowledged by Kafka."""
        pending = self.open.get(partition)
        if pending is not None:
            pending.discard(offset)
            self.dirty.add(partition)

    def is_open(self, partition: Partition, offset: int) -> bool:
        """True while the record's result is owed."""
        return offset in self.open.get(partition, ())

    def commit_point(self, partition: Partition, now_ms: int, final: bool = False) -> tuple[int, str]:
        """Offset to commit (Kafka's "next to read") and its note: which later offsets are unanswered.

        Costs O(open requests), not O(window): the note lists holes, and holes are few.
        """
        read_to = self.next_offset[partition]
        pending = self.open.get(partition) or set()
        position = min(pending) if pending else read_to
        # Answered by a previous owner and not read yet: still answered, so keep saying so.
        answered = self.answered.get(partition) or set()
        end = max(read_to, max(answered, default=-1) + 1)
        unread_holes = (o for o in range(read_to, end) if o not in answered)
        return position, encode_note(position, end, [*pending, *unread_holes], now_ms, final)

    def committable(self, now_ms: int, final: bool = False) -> dict[Partition, tuple[int, str]]:
        """Commit points of owned partitions that changed since their last commit (all when `final`)."""
        out: dict[Partition, tuple[int, str]] = {}
        changed, self.dirty = (set(self.next_offset), set()) if final else (self.dirty, set())
        for partition in changed:
            if self.owns(partition) and partition in self.next_offset:
                out[partition] = self.commit_point(partition, now_ms, final)
        return out

    def mark_committed(self, offsets: dict[Partition, tuple[int, str]]) -> None:
        """Remember what Kafka has accepted."""
        self.committed.update(offsets)

    def commit_failed(self, offsets: dict[Partition, tuple[int, str]]) -> None:
        """Kafka did not take these: compute them again next time."""
        self.dirty.update(offsets)

    def forget(self, partitions: list[Partition]) -> None:
        """Drop partitions this consumer no longer owns (after a rebalance)."""
        for partition in partitions:
            if partition in self.next_offset:
                # From the last commit Kafka took (or the first record read): what a re-read covers.
                last = self.committed.get(partition)
                position = last[0] if last is not None else self.first_read.get(partition, 0)
                pending = self.open.get(partition, set())
                answered = self.answered.get(partition, set())
                self.remembered[partition] = {
                    o for o in range(position, self.next_offset[partition]) if o not in pending
                } | answered
            self.owned.discard(partition)
            self.open.pop(partition, None)
            self.next_offset.pop(partition, None)
            self.committed.pop(partition, None)
            self.answered.pop(partition, None)
            self.first_read.pop(partition, None)
            self.dirty.discard(partition)

    def pending(self, partitions: list[Partition] | None = None) -> int:
        """Records read whose results are not acknowledged yet (in `partitions`, or all)."""
        keys = self.open if partitions is None else partitions
        return sum(len(self.open.get(p, ())) for p in keys)
