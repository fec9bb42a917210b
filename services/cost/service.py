"""The cost service's intake: one transaction per event, applied once (inbox keyed by handler)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy import case, delete, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.cost.adapters.orm import (
    demand_window,
    fleet_server,
    forecast,
    inbox,
    server_model,
    server_utilization,
)
from shared.events import (
    DemandForecasted,
    DemandWindowReported,
    Event,
    ModelLoaded,
    ModelUnloaded,
    ServerAllocated,
    ServerMetricsReported,
    ServerReleased,
)
from shared.inbox import first_delivery

Handler = Callable[[Event], Awaitable[None]]


async def record(sessions: async_sessionmaker[AsyncSession], consumer: str, event: Event) -> bool:
    """Apply one fleet, metrics, demand or forecast event once; False for a redelivery or no-op."""
    async with sessions.begin() as session:
        if not await first_delivery(session, inbox, consumer, event.event_id):
            return False
        return await _apply(session, event)


async def _apply(session: AsyncSession, event: Event) -> bool:
    if isinstance(event, ServerAllocated):
        await _allocated(session, event)
    elif isinstance(event, ModelLoaded):
        statement = insert(server_model).values(server_id=event.server_id, model_id=event.model_id)
        await session.execute(statement.on_conflict_do_nothing())
    elif isinstance(event, ModelUnloaded):
        await session.execute(
            delete(server_model).where(
                (server_model.c.server_id == event.server_id) & (server_model.c.model_id == event.model_id)
            )
        )
    elif isinstance(event, ServerReleased):
        await session.execute(
            update(fleet_server)
            .where(fleet_server.c.server_id == event.server_id)
            .values(released_at=event.occurred_at)
        )
        await session.execute(delete(server_model).where(server_model.c.server_id == event.server_id))
    elif isinstance(event, ServerMetricsReported):
        await _metrics(session, event)
    elif isinstance(event, DemandWindowReported):
        await _demand(session, event)
    elif isinstance(event, DemandForecasted):
        await _forecast(session, event)
    else:
        return False  # AllocationFailed and the like change no cost
    return True


async def _allocated(session: AsyncSession, event: ServerAllocated) -> None:
    values = {
        "region": event.region,
        "gpu_type": event.gpu_type,
        "gpu_count": event.gpu_count,
        "pricing_class": event.pricing_class,
        "cost_per_hour": event.cost_per_hour,
        "allocated_at": event.occurred_at,
    }
    statement = insert(fleet_server).values(server_id=event.server_id, released_at=None, **values)
    # A server id allocated again after its release is back; a late duplicate of an old allocation is not.
    released = fleet_server.c.released_at
    revived = case((released.is_(None), None), (released < event.occurred_at, None), else_=released)
    await session.execute(
        statement.on_conflict_do_update(index_elements=["server_id"], set_={**values, "released_at": revived})
    )


async def _metrics(session: AsyncSession, event: ServerMetricsReported) -> None:
    values = {
        "utilization": event.utilization,
        "throughput_rps": event.throughput_rps,
        "reported_at": event.occurred_at,
    }
    statement = insert(server_utilization).values(server_id=event.server_id, **values)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["server_id"],
            set_=values,
            where=server_utilization.c.reported_at <= event.occurred_at,  # an older report arriving late loses
        )
    )


async def _demand(session: AsyncSession, event: DemandWindowReported) -> None:
    await session.execute(
        insert(demand_window)
        .values(
            event_id=event.event_id,
            model_id=event.model_id,
            region=event.region,
            window_start=event.window_start,
            window_end=event.window_end,
            requests=event.requests,
            tokens=event.tokens_in + event.tokens_out,
            latency_p50_ms=event.latency_p50_ms,
        )
        .on_conflict_do_nothing()
    )


async def _forecast(session: AsyncSession, event: DemandForecasted) -> None:
    values = {
        "horizon_start": event.horizon_start,
        "requests_per_hour": list(event.requests_per_hour),
        "received_at": event.occurred_at,
    }
    statement = insert(forecast).values(model_id=event.model_id, region=event.region or "", **values)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["model_id", "region"], set_=values, where=forecast.c.horizon_start <= event.horizon_start
        )
    )
