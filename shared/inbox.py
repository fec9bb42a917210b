"""The inbox: an event is applied once per consumer, even when Kafka delivers it again.

The inbox row is written in the same transaction as the state change, so either both land or
neither does, and a redelivery finds the row and skips.
"""

from __future__ import annotations

import uuid

from sqlalchemy import Column, DateTime, MetaData, String, Table, func
from sqlalchemy.dialects.postgresql import UUID, insert
from sqlalchemy.ext.asyncio import AsyncSession


def inbox_table(metadata: MetaData) -> Table:
    """The inbox table in the service's schema."""
    return Table(
        "inbox",
        metadata,
        Column("consumer", String(100), primary_key=True),
        Column("event_id", UUID(as_uuid=True), primary_key=True),
        Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


async def first_delivery(session: AsyncSession, inbox: Table, consumer: str, event_id: uuid.UUID) -> bool:
    """Record the event in the inbox; False when this consumer has already applied it."""
    statement = (
        insert(inbox).values(consumer=consumer, event_id=event_id).on_conflict_do_nothing().returning(inbox.c.event_id)
    )
    result = await session.execute(statement)
    return result.first() is not None
