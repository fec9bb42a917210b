"""The Batch API's repository in SQL (its Protocol: adapters/batch_repository.py)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.gateway.adapters import keys_tables
from services.gateway.adapters.batch_repository import BatchRepository, Due, Sent, Waiting
from services.gateway.adapters.orm import api_key, batch, batch_file, batch_line
from services.gateway.domain.batch_lines import Assembled, InputLine, LineState, Outcome
from services.gateway.domain.batches import ACTIVE, FINAL, BatchRecord, BatchStatus, Counts, FileRecord, Usage
from services.gateway.domain.keys import ApiKey
from shared.unit_of_work import Transactions, UnitOfWork, unit_of_work

# One statement per round, whatever the number of lines: a round trip per line was most of a batch's time.
MARK_SENT = text(
    """
UPDATE batch_line AS b
SET state = 'sent', attempts = b.attempts + 1, due_at = :due_at,
    claim_id = v.claim_id, claim_window = v.claim_window, reserved = v.reserved
FROM unnest(CAST(:line_nos AS integer[]), CAST(:claim_ids AS text[]), CAST(:windows AS timestamptz[]),
            CAST(:reserved AS bigint[])) AS v(line_no, claim_id, claim_window, reserved)
WHERE b.batch_id = :batch_id AND b.line_no = v.line_no AND b.state IN ('pending', 'sent')
"""
)
# A line's one result: written only while the line waits for one, so the first result wins.
FINISH = text(
    """
UPDATE batch_line AS b
SET state = v.state, response = CAST(v.response AS json), error = CAST(v.error AS json),
    tokens_in = v.tokens_in, tokens_out = v.tokens_out, finished_at = :now
FROM unnest(CAST(:line_nos AS integer[]), CAST(:states AS text[]), CAST(:responses AS text[]),
            CAST(:errors AS text[]), CAST(:tokens_in AS integer[]), CAST(:tokens_out AS integer[]))
     AS v(line_no, state, response, error, tokens_in, tokens_out)
WHERE b.batch_id = :batch_id AND b.line_no = v.line_no AND b.state IN ('pending', 'sent')
RETURNING b.line_no
"""
)
INSERT_CHUNK = 5_000  # lines per INSERT statement (asyncpg's bind parameters are bounded)
STAGES = ("in_progress", "finalizing", "completed", "failed", "expired", "cancelling", "cancelled")
WAITING = (LineState.PENDING, LineState.SENT)


class SqlBatchRepository:
    """The batch repository over one session."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add_file(self, record: FileRecord, content: bytes) -> None:
        await self._session.execute(
            insert(batch_file).values(
                file_id=record.file_id,
                tenant_id=record.tenant_id,
                purpose=record.purpose,
                filename=record.filename,
                bytes=record.size,
                content=content,
                created_at=record.created_at,
            )
        )

    async def file(self, file_id: str, tenant_id: str) -> FileRecord | None:
        columns = [c for c in batch_file.c if c.name != "content"]
        query = select(*columns).where(batch_file.c.file_id == file_id, batch_file.c.tenant_id == tenant_id)
        row = (await self._session.execute(query)).first()
        if row is None:
            return None
        return FileRecord(row.file_id, row.tenant_id, row.purpose, row.filename, row.bytes, row.created_at)

    async def content(self, file_id: str, tenant_id: str | None) -> bytes | None:
        query = select(batch_file.c.content).where(batch_file.c.file_id == file_id)
        if tenant_id is not None:
            query = query.where(batch_file.c.tenant_id == tenant_id)
        return (await self._session.execute(query)).scalar_one_or_none()

    async def add_batch(self, record: BatchRecord) -> None:
        await self._session.execute(
            insert(batch).values(
                batch_id=record.batch_id,
                tenant_id=record.tenant_id,
                key_id=record.key_id,
                pool=record.pool,
                endpoint=record.endpoint,
                input_file_id=record.input_file_id,
                completion_window=record.completion_window,
                status=str(record.status),
                metadata=record.metadata,
                created_at=record.created_at,
                expires_at=record.expires_at,
                total=0,
                completed=0,
                failed=0,
                input_tokens=0,
                output_tokens=0,
            )
        )

    async def batch(self, batch_id: str, tenant_id: str | None, lock: bool = False) -> BatchRecord | None:
        query = select(batch).where(batch.c.batch_id == batch_id)
        if tenant_id is not None:
            query = query.where(batch.c.tenant_id == tenant_id)
        if lock:
            query = query.with_for_update()
        row = (await self._session.execute(query)).first()
        if row is None:
            return None
        record = _record(row)
        if record.status in FINAL or record.status is BatchStatus.VALIDATING:
            return record
        return _with(record, await self._live(batch_id, row.total))

    async def _live(self, batch_id: str, total: int) -> tuple[Counts, Usage]:
        """Counts and usage from the lines, while the batch runs (the batch row has them once final)."""
        query = (
            select(
                batch_line.c.state, func.count(), func.sum(batch_line.c.tokens_in), func.sum(batch_line.c.tokens_out)
            )
            .where(batch_line.c.batch_id == batch_id)
            .group_by(batch_line.c.state)
        )
        by_state = {row[0]: (row[1], row[2] or 0, row[3] or 0) for row in await self._session.execute(query)}
        done = by_state.get(LineState.DONE, (0, 0, 0))
        failed = by_state.get(LineState.FAILED, (0, 0, 0))
        return Counts(total, done[0], failed[0]), Usage(int(done[1]), int(done[2]))

    async def claim(self, owner: str, pool: str, lease_s: float, limit: int) -> list[BatchRecord]:
        free = or_(batch.c.owner.is_(None), batch.c.owner == owner, batch.c.lease_until < func.now())
        candidates = (
            select(batch.c.batch_id)
            .where(batch.c.status.in_([str(s) for s in ACTIVE]), batch.c.pool == pool, free)
            .order_by(batch.c.created_at, batch.c.batch_id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        ids = list((await self._session.execute(candidates)).scalars())
        if not ids:
            return []
        claimed = await self._session.execute(
            update(batch)
            .where(batch.c.batch_id.in_(ids))
            .values(owner=owner, lease_until=func.now() + timedelta(seconds=lease_s))
            .returning(*batch.c)
        )
        return sorted((_record(row) for row in claimed), key=lambda r: (r.created_at, r.batch_id))

    async def release(self, owner: str) -> int:
        released = await self._session.execute(
            update(batch).where(batch.c.owner == owner).values(owner=None, lease_until=None)
        )
        return int(released.rowcount)  # type: ignore[attr-defined]

    async def key(self, key_id: str) -> ApiKey | None:
        row = (await self._session.execute(keys_tables._keys_query().where(api_key.c.key_id == key_id))).first()
        return keys_tables._key(row) if row else None

    async def set_status(self, batch_id: str, status: BatchStatus, now: datetime, **values: Any) -> None:
        stamp = {f"{status}_at": now} if str(status) in STAGES else {}
        await self._session.execute(
            update(batch).where(batch.c.batch_id == batch_id).values(status=str(status), **stamp, **values)
        )

    async def add_lines(self, batch_id: str, lines: Sequence[InputLine]) -> None:
        rows = [
            {
                "batch_id": batch_id,
                "line_no": line.line_no,
                "custom_id": line.custom_id,
                "body": line.body,
                "state": str(LineState.PENDING),
                "attempts": 0,
                "tokens_in": 0,
                "tokens_out": 0,
            }
            for line in lines
        ]
        for start in range(0, len(rows), INSERT_CHUNK):
            await self._session.execute(insert(batch_line), rows[start : start + INSERT_CHUNK])
        await self._session.execute(update(batch).where(batch.c.batch_id == batch_id).values(total=len(rows)))

    async def due(self, batch_id: str, now: datetime, limit: int) -> list[Due]:
        c = batch_line.c
        pending = and_(c.state == str(LineState.PENDING), or_(c.due_at.is_(None), c.due_at <= now))
        overdue = and_(c.state == str(LineState.SENT), c.due_at <= now)
        query = (
            select(c.line_no, c.custom_id, c.body, c.state, c.attempts)
            .where(c.batch_id == batch_id, or_(pending, overdue))
            .order_by(c.line_no)
            .limit(limit)
        )
        rows = await self._session.execute(query)
        return [Due(r.line_no, r.custom_id, r.body, LineState(r.state), r.attempts) for r in rows]

    async def in_flight(self, batch_id: str, now: datetime) -> int:
        c = batch_line.c
        query = select(func.count()).where(c.batch_id == batch_id, c.state == str(LineState.SENT), c.due_at > now)
        return int((await self._session.execute(query)).scalar_one())

    async def mark_sent(self, batch_id: str, sent: Sequence[Sent], due_at: datetime) -> None:
        if not sent:
            return
        await self._session.execute(
            MARK_SENT,
            {
                "batch_id": batch_id,
                "due_at": due_at,
                "line_nos": [s.line_no for s in sent],
                "claim_ids": [s.claim_id for s in sent],
                "windows": [s.window for s in sent],
                "reserved": [s.reserved for s in sent],
            },
        )

    async def open_lines(self, batch_id: str) -> int:
        c = batch_line.c
        query = select(func.count()).where(c.batch_id == batch_id, c.state.in_([str(s) for s in WAITING]))
        return int((await self._session.execute(query)).scalar_one())

    async def close_lines(
        self, batch_id: str, states: Sequence[LineState], to: LineState, error: dict[str, Any] | None, now: datetime
    ) -> int:
        closed = await self._session.execute(
            update(batch_line)
            .where(batch_line.c.batch_id == batch_id, batch_line.c.state.in_([str(s) for s in states]))
            .values(state=str(to), error=error, finished_at=now)
        )
        return int(closed.rowcount)  # type: ignore[attr-defined]

    async def waiting(self, batch_id: str, line_nos: Sequence[int]) -> list[Waiting]:
        c = batch_line.c
        query = (
            select(
                c.line_no, c.custom_id, c.body, c.state, c.attempts, c.claim_id, c.claim_window, c.reserved,
                batch.c.endpoint, batch.c.key_id, batch.c.tenant_id,
            )
            .join(batch, batch.c.batch_id == c.batch_id)
            .where(c.batch_id == batch_id, c.line_no.in_(list(line_nos)))
        )  # fmt: skip
        return [
            Waiting(
                batch_id, r.line_no, r.custom_id, r.body, r.endpoint, LineState(r.state), r.attempts,
                r.key_id, r.tenant_id, r.claim_id, r.claim_window, r.reserved,
            )
            for r in await self._session.execute(query)
        ]  # fmt: skip

    async def finish(self, batch_id: str, outcomes: Sequence[Outcome], now: datetime) -> set[int]:
        if not outcomes:
            return set()
        finished = await self._session.execute(
            FINISH,
            {
                "batch_id": batch_id,
                "now": now,
                "line_nos": [o.line_no for o in outcomes],
                "states": [str(o.state) for o in outcomes],
                "responses": [None if o.response is None else json.dumps(o.response) for o in outcomes],
                "errors": [None if o.error is None else json.dumps(o.error) for o in outcomes],
                "tokens_in": [o.tokens_in for o in outcomes],
                "tokens_out": [o.tokens_out for o in outcomes],
            },
        )
        return {row[0] for row in finished}

    async def retry(self, batch_id: str, line_no: int, due_at: datetime) -> bool:
        retried = await self._session.execute(
            update(batch_line)
            .where(batch_line.c.batch_id == batch_id, batch_line.c.line_no == line_no)
            .where(batch_line.c.state == str(LineState.SENT))
            .values(state=str(LineState.PENDING), due_at=due_at)
        )
        return bool(retried.rowcount)  # type: ignore[attr-defined]

    async def outcomes(self, batch_id: str) -> list[Outcome]:
        c = batch_line.c
        query = select(
            c.line_no, c.custom_id, c.state, c.response, c.error, c.tokens_in, c.tokens_out
        ).where(c.batch_id == batch_id)  # fmt: skip
        return [
            Outcome(r.line_no, r.custom_id, "", LineState(r.state), r.response, r.error, r.tokens_in, r.tokens_out)
            for r in await self._session.execute(query)
        ]

    async def finalize(self, record: BatchRecord, status: BatchStatus, assembled: Assembled, now: datetime) -> None:
        ids: dict[str, str | None] = {"output_file_id": None, "error_file_id": None}
        for name, data, suffix in (
            ("output_file_id", assembled.output, "output"),
            ("error_file_id", assembled.errors, "errors"),
        ):
            if data is None:
                continue
            file_id = f"file-{record.batch_id.removeprefix('batch_')}-{suffix}"
            filename = f"{record.batch_id}_{suffix}.jsonl"
            await self.add_file(FileRecord(file_id, record.tenant_id, "batch_output", filename, len(data), now), data)
            ids[name] = file_id
        counts, usage = assembled.counts, assembled.usage
        await self.set_status(
            record.batch_id,
            status,
            now,
            **ids,
            total=counts.total,
            completed=counts.completed,
            failed=counts.failed,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            owner=None,
            lease_until=None,
        )


def _record(row: Any) -> BatchRecord:
    times = {f"{s}_at": getattr(row, f"{s}_at") for s in STAGES if getattr(row, f"{s}_at") is not None}
    return BatchRecord(
        batch_id=row.batch_id,
        tenant_id=row.tenant_id,
        key_id=row.key_id,
        endpoint=row.endpoint,
        input_file_id=row.input_file_id,
        completion_window=row.completion_window,
        status=BatchStatus(row.status),
        created_at=row.created_at,
        expires_at=row.expires_at,
        metadata=row.metadata,
        pool=row.pool,
        errors=row.errors,
        output_file_id=row.output_file_id,
        error_file_id=row.error_file_id,
        times=times,
        counts=Counts(row.total, row.completed, row.failed),
        usage=Usage(row.input_tokens, row.output_tokens),
    )


def _with(record: BatchRecord, live: tuple[Counts, Usage]) -> BatchRecord:
    return replace(record, counts=live[0], usage=live[1])


def batch_store(database: Transactions[BatchRepository]) -> UnitOfWork[BatchRepository]:
    """The batch unit of work over a session factory (or a fake, as it is)."""
    return unit_of_work(database, SqlBatchRepository)
