"""Retention: old inbox, sent outbox and history rows are deleted, one implementation for every service.

A service declares what it prunes, table by table: `messaging(inbox, outbox, settings)` for the
two tables every service has, `Kept(table, "<timestamp column>", keep_s)` for its history. The
declared `retention_job` then, every `retention_interval_s` and on one replica only (the
`<service>.retention` leader lock), deletes rows whose timestamp is older than their table's
retention, at most `retention_batch_rows` per statement, each batch in its own transaction:
a large backlog is worked off in many short transactions instead of one long lock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Table, delete, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql.elements import ColumnClause, ColumnElement

from shared.jobs import Job, periodic
from shared.leader import leading
from shared.settings import ServiceSettings

log = logging.getLogger(__name__)
Sessions = async_sessionmaker[AsyncSession]


@dataclass(frozen=True)
class Kept:
    """A table pruned by one timestamp column: rows older than `keep_s` go (rows where it is NULL stay).

    `only`: a condition a row must also meet to go (e.g. finished actions only, never live ones).
    """

    table: Table
    column: str
    keep_s: float
    only: ColumnElement[bool] | None = None


def messaging(inbox: Table, outbox: Table, settings: ServiceSettings) -> tuple[Kept, Kept]:
    """The inbox by arrival, and the outbox by when a row was sent (unsent rows are never pruned)."""
    return (
        Kept(inbox, "received_at", settings.inbox_retention_s),
        Kept(outbox, "published_at", settings.outbox_retention_s),
    )


async def delete_batch(session: AsyncSession, kept: Kept, cutoff: datetime, limit: int) -> int:
    """Delete at most `limit` rows of `kept.table` older than `cutoff`; return how many went."""
    older = kept.table.c[kept.column] < cutoff
    if kept.only is not None:
        older = older & kept.only
    # DELETE has no LIMIT in PostgreSQL: pick the rows by their physical id (works for any key).
    ctid: ColumnClause[Any] = literal_column("ctid")
    batch = select(ctid).select_from(kept.table).where(older).limit(limit).scalar_subquery()
    result = await session.execute(delete(kept.table).where(ctid.in_(batch)))
    return int(getattr(result, "rowcount", 0) or 0)


async def prune_table(sessions: Sessions, kept: Kept, now: datetime, batch_rows: int) -> int:
    """Delete `kept.table`'s rows older than its retention, batch by batch; return how many went."""
    cutoff, removed = now - timedelta(seconds=kept.keep_s), 0
    while True:
        async with sessions.begin() as session:
            deleted = await delete_batch(session, kept, cutoff, batch_rows)
        removed += deleted
        if deleted < batch_rows:
            return removed


async def prune(
    sessions: Sessions, lock: str, tables: Sequence[Kept], now: datetime, batch_rows: int
) -> dict[str, int] | None:
    """Prune every declared table under the `lock` leader lock; rows removed per table, None if not the leader."""
    async with leading(sessions, lock) as leader:
        if not leader:
            return None
        removed = {kept.table.name: await prune_table(sessions, kept, now, batch_rows) for kept in tables}
    if any(removed.values()):
        log.info("retention removed %s", removed)
    return removed


def utc_now() -> datetime:
    """The wall clock retention measures ages against."""
    return datetime.now(UTC)


def retention_job(
    sessions: Sessions,
    settings: ServiceSettings,
    tables: Sequence[Kept],
    clock: Callable[[], datetime] = utc_now,
    immediately: bool = False,
) -> Job:
    """The retention job: prune `tables` every `retention_interval_s` on one replica (`immediately`: at start too)."""

    async def round_() -> None:
        lock = f"{settings.service_name}.retention"
        await prune(sessions, lock, tables, clock(), settings.retention_batch_rows)

    return periodic(f"{settings.service_name} retention", settings.retention_interval_s, round_, immediately)
