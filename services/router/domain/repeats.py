"""Requests a crashed router answered after its last commit: found again in Kafka, skipped once.

A commit's note says which requests past it are answered, but a router killed between a result's
acknowledgement and its next commit (at most `commit_interval_s`) leaves no note of those. The
next owner therefore reads the results written since that commit back from the result topics (a
bounded scan, in the shell) and skips the requests it finds there, up to the end offsets the
partitions had at assignment: exactly one result per request id, also across a SIGKILL.
"""

from __future__ import annotations

from dataclasses import dataclass, field

Partition = tuple[str, int]


@dataclass
class Repeats:
    """Request ids already answered, and per partition the offset up to which records are checked."""

    answered: set[str] = field(default_factory=set)
    check_until: dict[Partition, int] = field(default_factory=dict)

    def add(self, answered: set[str], check_until: dict[Partition, int]) -> None:
        """Results found by a scan, for records of these partitions below these offsets."""
        self.answered |= answered
        self.check_until.update(check_until)

    def seen(self, partition: Partition, offset: int, request_id: str) -> bool:
        """True when this record's request was answered already (skip it)."""
        end = self.check_until.get(partition)
        if end is None:
            return False
        if offset >= end:  # past what the crashed owner could have read: stop checking
            del self.check_until[partition]
            if not self.check_until:
                self.answered.clear()
            return False
        return request_id in self.answered

    def drop(self, partitions: set[Partition]) -> None:
        """Partitions that moved away need no checks here."""
        for partition in partitions:
            self.check_until.pop(partition, None)
        if not self.check_until:
            self.answered.clear()
