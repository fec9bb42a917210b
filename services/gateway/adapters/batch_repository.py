"""What the Batch API's use cases see of its tables: the repository Protocol and the rows it hands out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from services.gateway.domain.batch_lines import Assembled, InputLine, LineState, Outcome
from services.gateway.domain.batches import BatchRecord, BatchStatus, FileRecord
from services.gateway.domain.keys import ApiKey


@dataclass(frozen=True)
class Due:
    """A line to send now: never sent, sent back by a retryable refusal, or sent and not answered in time."""

    line_no: int
    custom_id: str
    body: dict[str, Any]
    state: LineState
    attempts: int


@dataclass(frozen=True)
class Sent:
    """A line sent under a ledger claim (settled by its result)."""

    line_no: int
    claim_id: str
    window: datetime
    reserved: int


@dataclass(frozen=True)
class Waiting:
    """A line a result arrived for, with what its settlement and response need."""

    batch_id: str
    line_no: int
    custom_id: str
    body: dict[str, Any]
    endpoint: str
    state: LineState
    attempts: int
    key_id: str
    tenant_id: str
    claim_id: str | None
    claim_window: datetime | None
    reserved: int | None


class BatchRepository(Protocol):
    """Everything the Batch API reads and writes, in one transaction."""

    async def add_file(self, record: FileRecord, content: bytes) -> None:
        """Store a file."""

    async def file(self, file_id: str, tenant_id: str) -> FileRecord | None:
        """The tenant's file."""

    async def content(self, file_id: str, tenant_id: str | None) -> bytes | None:
        """A file's bytes (the tenant's, or anyone's for the runner)."""

    async def add_batch(self, record: BatchRecord) -> None:
        """Store a new batch."""

    async def batch(self, batch_id: str, tenant_id: str | None, lock: bool = False) -> BatchRecord | None:
        """A batch, with live counts while it runs."""

    async def claim(self, owner: str, pool: str, lease_s: float, limit: int) -> list[BatchRecord]:
        """The pool's active batches nobody else holds a live lease on, leased to `owner` (its own renewed)."""

    async def release(self, owner: str) -> int:
        """End `owner`'s leases (a graceful stop: another replica takes its batches over at once); how many."""

    async def key(self, key_id: str) -> ApiKey | None:
        """The key (with its tenant) a batch runs under."""

    async def set_status(self, batch_id: str, status: BatchStatus, now: datetime, **values: Any) -> None:
        """Move a batch to `status`, stamping `<status>_at`."""

    async def add_lines(self, batch_id: str, lines: Sequence[InputLine]) -> None:
        """Store the input's lines, all pending."""

    async def due(self, batch_id: str, now: datetime, limit: int) -> list[Due]:
        """Lines to send now, in input order."""

    async def in_flight(self, batch_id: str, now: datetime) -> int:
        """Lines sent and still within their time."""

    async def mark_sent(self, batch_id: str, sent: Sequence[Sent], due_at: datetime) -> None:
        """Record sends (attempt counted, claim kept); sent again after `due_at` if unanswered."""

    async def open_lines(self, batch_id: str) -> int:
        """Lines still pending or sent."""

    async def close_lines(
        self, batch_id: str, states: Sequence[LineState], to: LineState, error: dict[str, Any] | None, now: datetime
    ) -> int:
        """Move every line in `states` to `to` (expired, cancelled, or no result after the last attempt)."""

    async def waiting(self, batch_id: str, line_nos: Sequence[int]) -> list[Waiting]:
        """The lines of a batch results arrived for, with the batch's key and endpoint."""

    async def finish(self, batch_id: str, outcomes: Sequence[Outcome], now: datetime) -> set[int]:
        """Write lines' one result; the line numbers written (a line that already has one is left as it is)."""

    async def retry(self, batch_id: str, line_no: int, due_at: datetime) -> bool:
        """Send a refused line again after `due_at`; False unless it was waiting for this result."""

    async def outcomes(self, batch_id: str) -> list[Outcome]:
        """Every line's outcome."""

    async def finalize(self, record: BatchRecord, status: BatchStatus, assembled: Assembled, now: datetime) -> None:
        """Store the output and error files and end the batch with its counts and usage."""
