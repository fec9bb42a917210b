"""The outbox: events that must not be lost are written with the state change, then relayed.

A handler that changes state and must announce it adds the event to the outbox table in the same
transaction. The relay publishes pending rows in order and marks them sent only after Kafka has
acknowledged them, so a crash between commit and publish delays an event but never drops it
(it may be sent twice; consumers dedupe by `event_id`).

Each row keeps the W3C `traceparent` of the span that wrote it, and the relay publishes the row
inside that trace context: the record's headers carry it on, so the consumer continues the
writer's trace (a scaling decision's trace reaches the allocator's provisioning) instead of the
relay's poll starting a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from faststream.kafka import KafkaBroker
from opentelemetry import context, propagate
from sqlalchemy import BigInteger, Column, DateTime, Identity, LargeBinary, MetaData, String, Table, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.events import Event, Topic
from shared.telemetry import current_traceparent

log = logging.getLogger(__name__)


def outbox_table(metadata: MetaData) -> Table:
    """The outbox table in the service's schema."""
    return Table(
        "outbox",
        metadata,
        Column("id", BigInteger, Identity(), primary_key=True),
        Column("topic", String(200), nullable=False),
        Column("key", String(200), nullable=False),
        Column("payload", LargeBinary, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("published_at", DateTime(timezone=True), index=True),
        # The writer's W3C trace context; the relay publishes the row in it.
        Column("traceparent", String(128)),
    )


async def add_to_outbox(session: AsyncSession, outbox: Table, topic: Topic, event: Event, key: str) -> None:
    """Queue an event for publishing; it goes out only if the surrounding transaction commits."""
    payload = event.model_dump_json().encode()
    await session.execute(
        outbox.insert().values(topic=topic.name, key=key, payload=payload, traceparent=current_traceparent())
    )


class OutboxRelay:
    """Publishes committed outbox rows to Kafka in insertion order."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], outbox: Table, broker: KafkaBroker) -> None:
        self._sessions = sessions
        self._outbox = outbox
        self._broker = broker
        self._wake = asyncio.Event()
        self._columns = [outbox.c[name] for name in ("id", "topic", "key", "payload", "traceparent")]

    def notify(self) -> None:
        """Tell the relay that something was committed (it also polls)."""
        self._wake.set()

    async def publish_pending(self, limit: int = 500) -> int:
        """Publish up to `limit` pending rows; return how many went out."""
        async with self._sessions.begin() as session:
            # SKIP LOCKED: replicas of a service relay disjoint rows instead of waiting on each other.
            rows = (
                await session.execute(
                    select(*self._columns)
                    .where(self._outbox.c.published_at.is_(None))
                    .order_by(self._outbox.c.id)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            for row in rows:
                await self._publish_in_trace(row.payload, row.topic, row.key, row.traceparent)
            if rows:
                await session.execute(
                    self._outbox.update()
                    .where(self._outbox.c.id.in_([row.id for row in rows]))
                    .values(published_at=func.now())
                )
        return len(rows)

    async def _publish_in_trace(self, payload: bytes, topic: str, key: str, traceparent: str | None) -> None:
        """Publish one row in its writer's trace context: the broker's publish span and headers continue it."""
        token = context.attach(propagate.extract({"traceparent": traceparent})) if traceparent else None
        try:
            await self._broker.publish(payload, topic, key=key.encode(), headers={"content-type": "application/json"})
        finally:
            if token is not None:
                context.detach(token)

    async def run(self, poll_interval_s: float = 1.0) -> None:
        """Relay until cancelled; errors are logged and retried on the next round."""
        while True:
            try:
                while await self.publish_pending() > 0:
                    pass
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay round failed; retrying")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), poll_interval_s)
