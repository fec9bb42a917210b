"""In-memory stand-ins for the Batch API's repository and Kafka link: the same Protocols, for unit tests."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from services.gateway.adapters.batch_repository import BatchRepository, Due, Sent, Waiting
from services.gateway.domain.batch_lines import Assembled, InputLine, LineState, Outcome
from services.gateway.domain.batches import ACTIVE, FINAL, BatchRecord, BatchStatus, Counts, FileRecord, Usage
from services.gateway.domain.keys import ApiKey
from shared.events import InferenceRequested

WAITING = (LineState.PENDING, LineState.SENT)


@dataclass
class Line:
    """A batch_line row."""

    custom_id: str
    body: dict[str, Any]
    state: LineState = LineState.PENDING
    attempts: int = 0
    due_at: datetime | None = None
    claim: Sent | None = None
    outcome: Outcome | None = None


@dataclass
class BatchState:
    """What the batch tables hold."""

    files: dict[str, tuple[FileRecord, bytes]] = field(default_factory=dict)
    batches: dict[str, BatchRecord] = field(default_factory=dict)
    leases: dict[str, tuple[str, datetime]] = field(default_factory=dict)
    lines: dict[str, dict[int, Line]] = field(default_factory=dict)
    keys: dict[str, ApiKey] = field(default_factory=dict)


class FakeBatchRepository(BatchRepository):
    """The batch repository over a `BatchState`."""

    def __init__(self, state: BatchState, now: datetime) -> None:
        self.state, self.now = state, now

    async def add_file(self, record: FileRecord, content: bytes) -> None:
        self.state.files[record.file_id] = (record, content)

    async def file(self, file_id: str, tenant_id: str) -> FileRecord | None:
        found = self.state.files.get(file_id)
        return found[0] if found and found[0].tenant_id == tenant_id else None

    async def content(self, file_id: str, tenant_id: str | None) -> bytes | None:
        found = self.state.files.get(file_id)
        return found[1] if found and tenant_id in (None, found[0].tenant_id) else None

    async def add_batch(self, record: BatchRecord) -> None:
        self.state.batches[record.batch_id] = record

    async def batch(self, batch_id: str, tenant_id: str | None, lock: bool = False) -> BatchRecord | None:
        record = self.state.batches.get(batch_id)
        if record is None or tenant_id not in (None, record.tenant_id):
            return None
        if record.status in FINAL or record.status is BatchStatus.VALIDATING:
            return record
        lines = self.state.lines.get(batch_id, {}).values()
        done = [ln for ln in lines if ln.state is LineState.DONE]
        failed = sum(1 for ln in lines if ln.state is LineState.FAILED)
        usage = Usage(
            sum(ln.outcome.tokens_in for ln in done if ln.outcome),
            sum(ln.outcome.tokens_out for ln in done if ln.outcome),
        )
        return replace(record, counts=Counts(record.counts.total, len(done), failed), usage=usage)

    async def claim(self, owner: str, pool: str, lease_s: float, limit: int) -> list[BatchRecord]:
        from datetime import timedelta

        free = [
            b for b in self.state.batches.values()
            if b.status in ACTIVE and b.pool == pool
            and (b.batch_id not in self.state.leases or self.state.leases[b.batch_id][0] == owner
                 or self.state.leases[b.batch_id][1] < self.now)
        ][:limit]  # fmt: skip
        for b in free:
            self.state.leases[b.batch_id] = (owner, self.now + timedelta(seconds=lease_s))
        return free

    async def release(self, owner: str) -> int:
        mine = [b for b, (o, _) in self.state.leases.items() if o == owner]
        for b in mine:
            del self.state.leases[b]
        return len(mine)

    async def key(self, key_id: str) -> ApiKey | None:
        return self.state.keys.get(key_id)

    async def set_status(self, batch_id: str, status: BatchStatus, now: datetime, **values: Any) -> None:
        record = self.state.batches[batch_id]
        times = record.times | {f"{status}_at": now} | {k: v for k, v in values.items() if k.endswith("_at")}
        extra = {k: v for k, v in values.items() if k in ("errors", "output_file_id", "error_file_id")}
        self.state.batches[batch_id] = replace(record, status=status, times=times, **extra)

    async def add_lines(self, batch_id: str, lines: Sequence[InputLine]) -> None:
        self.state.lines[batch_id] = {ln.line_no: Line(ln.custom_id, ln.body) for ln in lines}
        record = self.state.batches[batch_id]
        self.state.batches[batch_id] = replace(record, counts=Counts(len(lines)))

    async def due(self, batch_id: str, now: datetime, limit: int) -> list[Due]:
        due = [
            Due(no, ln.custom_id, ln.body, ln.state, ln.attempts)
            for no, ln in sorted(self.state.lines.get(batch_id, {}).items())
            if (ln.state is LineState.PENDING and (ln.due_at is None or ln.due_at <= now))
            or (ln.state is LineState.SENT and ln.due_at is not None and ln.due_at <= now)
        ]
        return due[:limit]

    async def in_flight(self, batch_id: str, now: datetime) -> int:
        lines = self.state.lines.get(batch_id, {}).values()
        return sum(1 for ln in lines if ln.state is LineState.SENT and ln.due_at is not None and ln.due_at > now)

    async def mark_sent(self, batch_id: str, sent: Sequence[Sent], due_at: datetime) -> None:
        for s in sent:
            line = self.state.lines[batch_id][s.line_no]
            if line.state in WAITING:
                line.state, line.attempts, line.due_at, line.claim = LineState.SENT, line.attempts + 1, due_at, s

    async def open_lines(self, batch_id: str) -> int:
        return sum(1 for ln in self.state.lines.get(batch_id, {}).values() if ln.state in WAITING)

    async def close_lines(
        self, batch_id: str, states: Sequence[LineState], to: LineState, error: dict[str, Any] | None, now: datetime
    ) -> int:
        closed = 0
        for no, line in self.state.lines.get(batch_id, {}).items():
            if line.state in states:
                line.state, closed = to, closed + 1
                line.outcome = Outcome(no, line.custom_id, "", to, None, error)
        return closed

    async def waiting(self, batch_id: str, line_nos: Sequence[int]) -> list[Waiting]:
        record, lines = self.state.batches.get(batch_id), self.state.lines.get(batch_id, {})
        if record is None:
            return []
        found = []
        for no in line_nos:
            if (line := lines.get(no)) is None:
                continue
            claim = line.claim
            found.append(Waiting(
                batch_id, no, line.custom_id, line.body, record.endpoint, line.state, line.attempts,
                record.key_id, record.tenant_id, claim.claim_id if claim else None,
                claim.window if claim else None, claim.reserved if claim else None,
            ))  # fmt: skip
        return found

    async def finish(self, batch_id: str, outcomes: Sequence[Outcome], now: datetime) -> set[int]:
        written = set()
        for outcome in outcomes:
            line = self.state.lines[batch_id][outcome.line_no]
            if line.state in WAITING:
                line.state, line.outcome = outcome.state, outcome
                written.add(outcome.line_no)
        return written

    async def retry(self, batch_id: str, line_no: int, due_at: datetime) -> bool:
        line = self.state.lines[batch_id][line_no]
        if line.state is not LineState.SENT:
            return False
        line.state, line.due_at = LineState.PENDING, due_at
        return True

    async def outcomes(self, batch_id: str) -> list[Outcome]:
        return [
            ln.outcome or Outcome(no, ln.custom_id, "", ln.state)
            for no, ln in self.state.lines.get(batch_id, {}).items()
        ]

    async def finalize(self, record: BatchRecord, status: BatchStatus, assembled: Assembled, now: datetime) -> None:
        ids: dict[str, str | None] = {"output_file_id": None, "error_file_id": None}
        for name, data in (("output_file_id", assembled.output), ("error_file_id", assembled.errors)):
            if data is not None:
                file_id = f"file-{record.batch_id}-{name}"
                await self.add_file(FileRecord(file_id, record.tenant_id, "batch_output", name, len(data), now), data)
                ids[name] = file_id
        await self.set_status(record.batch_id, status, now, **ids)
        current = self.state.batches[record.batch_id]
        self.state.batches[record.batch_id] = replace(current, counts=assembled.counts, usage=assembled.usage)
        self.state.leases.pop(record.batch_id, None)


@dataclass
class FakeBatchStore:
    """A unit of work over one state: a transaction commits a copy, or leaves the state as it was on error."""

    state: BatchState = field(default_factory=BatchState)
    now: datetime | None = None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[BatchRepository]:
        working = copy.deepcopy(self.state)
        yield FakeBatchRepository(working, self.now or datetime.now().astimezone())
        self.state.__dict__.update(working.__dict__)


@dataclass
class FakeSender:
    """The Kafka link: keeps what was sent; `fail` makes the next send raise."""

    reply_topic: str = "inference.replies.gateway-batch"
    sent: list[InferenceRequested] = field(default_factory=list)
    fail: bool = False

    async def send(self, requests: list[InferenceRequested]) -> None:
        if self.fail:
            self.fail = False
            raise ConnectionError("broker away")
        self.sent.extend(requests)
