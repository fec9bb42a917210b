"""Delivery attempts that outlive the process: a record that keeps killing its consumer is parked, not retried forever.

A handler error is retried in memory (`shared.subscribe`), but a record that crashes the process
(out of memory, a segfault in a native library, a kill by the orchestrator's liveness probe)
would start again at zero after every restart. So deliveries are also counted in the service's
`delivery_attempt` table, keyed by consumer group, topic, partition and offset.

Counting every record would cost a write per record. It is not needed: a consumer resumes at
its group's committed offset, so a record that crashed the process is always the *first* record
the restarted process sees on that partition. `subscribe` counts a record only when it is not
the direct successor of the last offset this process saw on its partition (the first record
after start or after a rebalance, a redelivery, a jump), in its own short transaction before the
handler runs; a record whose count is past the limit is parked without running the handler. In
steady state, record after record on a partition, no extra write happens. The row is deleted
once the record is done (handled or parked); retention prunes rows a crash left behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import BigInteger, Column, DateTime, Integer, MetaData, String, Table, delete, func, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql.elements import ColumnElement

TABLE_NAME = "delivery_attempt"


def delivery_attempt_table(metadata: MetaData) -> Table:
    """The `delivery_attempt` table in the service's schema: deliveries of a record that did not finish yet."""
    return Table(
        TABLE_NAME,
        metadata,
        Column("consumer_group", String(300), primary_key=True),
        Column("topic", String(200), primary_key=True),
        Column("partition", Integer, primary_key=True),
        Column("record_offset", BigInteger, primary_key=True),
        Column("attempts", Integer, nullable=False),
        Column("last_error", String(2000)),
        Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


def find_delivery_attempt_table(metadata: MetaData) -> Table | None:
    """The `delivery_attempt` table declared in `metadata` (a service's `adapters/orm.py`), or None."""
    key = f"{metadata.schema}.{TABLE_NAME}" if metadata.schema else TABLE_NAME
    return metadata.tables.get(key)


@dataclass(frozen=True)
class RecordAt:
    """Where a record is: the consumer group reading it and its topic, partition and offset."""

    group: str
    topic: str
    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset} (group {self.group})"


@dataclass(frozen=True)
class Noted:
    """A delivery counted: how many deliveries of the record have started, and the last error one recorded."""

    deliveries: int
    last_error: str | None


class DeliveryLedger(Protocol):
    """Where `subscribe` counts deliveries across restarts (the table, or a fake in tests)."""

    async def note_delivery(self, at: RecordAt) -> Noted:
        """Count one more delivery of the record; the count so far, this one included."""
        ...

    async def note_error(self, at: RecordAt, error: str) -> None:
        """Remember the error a delivery of the record ended with (shown if the record is parked later)."""
        ...

    async def forget(self, at: RecordAt) -> None:
        """The record is done (handled or parked): its count is no longer needed."""
        ...


class SqlDeliveryLedger:
    """The ledger over a service's `delivery_attempt` table; every call is its own short transaction."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], table: Table) -> None:
        self.sessions = sessions
        self.table = table

    def _key(self, at: RecordAt) -> dict[str, object]:
        return {"consumer_group": at.group, "topic": at.topic, "partition": at.partition, "record_offset": at.offset}

    def _where(self, at: RecordAt) -> list[ColumnElement[bool]]:
        return [self.table.c[name] == value for name, value in self._key(at).items()]

    async def note_delivery(self, at: RecordAt) -> Noted:
        """Insert the row with one attempt, or add one to it (one statement: no race between replicas)."""
        table = self.table
        statement = (
            insert(table)
            .values(**self._key(at), attempts=1)
            .on_conflict_do_update(
                index_elements=list(self._key(at)),
                set_={"attempts": table.c.attempts + 1, "updated_at": func.now()},
            )
            .returning(table.c.attempts, table.c.last_error)
        )
        async with self.sessions.begin() as session:
            attempts, last_error = (await session.execute(statement)).one()
        return Noted(int(attempts), last_error)

    async def note_error(self, at: RecordAt, error: str) -> None:
        """Store the error on the record's row (a no-op when it has none)."""
        statement = update(self.table).where(*self._where(at)).values(last_error=error[:2000], updated_at=func.now())
        async with self.sessions.begin() as session:
            await session.execute(statement)

    async def forget(self, at: RecordAt) -> None:
        """Delete the record's row."""
        async with self.sessions.begin() as session:
            await session.execute(delete(self.table).where(*self._where(at)))
