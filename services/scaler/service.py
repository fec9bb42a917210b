"""The scaler's service layer: one transaction per event."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.scaler.adapters.orm import demand_window, inbox
from shared.events import DemandWindowReported
from shared.inbox import first_delivery


async def record_demand_window(
    sessions: async_sessionmaker[AsyncSession], consumer: str, event: DemandWindowReported
) -> bool:
    """Store one demand window once; False when it was a redelivery and nothing changed."""
    async with sessions.begin() as session:
        if not await first_delivery(session, inbox, consumer, event.event_id):
            return False
        await session.execute(
            demand_window.insert().values(
                event_id=event.event_id,
                model_id=event.model_id,
                region=event.region,
                window_start=event.window_start,
                window_end=event.window_end,
                requests=event.requests,
                ok=event.ok,
                rejected=event.rejected,
                failed=event.failed,
                tokens_in=event.tokens_in,
                tokens_out=event.tokens_out,
                latency_p95_ms=event.latency_p95_ms,
            )
        )
        return True
