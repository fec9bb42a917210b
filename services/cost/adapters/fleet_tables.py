"""The fleet, demand and forecast tables: what intake writes and what a cycle reads back."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlalchemy import case, delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.cost.adapters.orm import (
    demand_window,
    fleet_server,
    forecast,
    pool_capacity,
    server_model,
    server_utilization,
)
from services.cost.domain.cycle import Forecast
from services.cost.domain.fleet import DemandWindow, PoolCapacity, Server
from services.cost.domain.pricing import PricingClass
from shared.events import (
    CapacityChanged,
    DemandForecasted,
    DemandWindowReported,
    ServerAllocated,
    ServerMetricsReported,
)


class FleetTables:
    """SQL of the fleet as events describe it (part of the SQL repository; the caller owns the transaction)."""

    _session: AsyncSession

    async def record_allocation(self, event: ServerAllocated) -> None:
        """Insert or revive a server; a late duplicate of an old allocation keeps its release."""
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
        await self._session.execute(
            statement.on_conflict_do_update(index_elements=["server_id"], set_={**values, "released_at": revived})
        )

    async def add_model(self, server_id: str, model_id: str) -> None:
        """Record that a server holds a model."""
        statement = insert(server_model).values(server_id=server_id, model_id=model_id)
        await self._session.execute(statement.on_conflict_do_nothing())

    async def remove_model(self, server_id: str, model_id: str) -> None:
        """Record that a server no longer holds a model."""
        held = (server_model.c.server_id == server_id) & (server_model.c.model_id == model_id)
        await self._session.execute(delete(server_model).where(held))

    async def release_server(self, server_id: str, at: datetime) -> None:
        """Mark a server released (its row stays for history) and forget its models."""
        await self._session.execute(
            update(fleet_server).where(fleet_server.c.server_id == server_id).values(released_at=at)
        )
        await self._session.execute(delete(server_model).where(server_model.c.server_id == server_id))

    async def record_utilization(self, event: ServerMetricsReported) -> None:
        """Keep a server's latest utilisation; an older report arriving late loses."""
        values = {
            "utilization": event.utilization,
            "throughput_rps": event.throughput_rps,
            "reported_at": event.occurred_at,
        }
        statement = insert(server_utilization).values(server_id=event.server_id, **values)
        newer = server_utilization.c.reported_at <= event.occurred_at
        await self._session.execute(
            statement.on_conflict_do_update(index_elements=["server_id"], set_=values, where=newer)
        )

    async def add_demand_window(self, event: DemandWindowReported) -> None:
        """Store one of the router's demand windows (once per event id)."""
        row = {
            "event_id": event.event_id,
            "model_id": event.model_id,
            "region": event.region,
            "window_start": event.window_start,
            "window_end": event.window_end,
            "requests": event.requests,
            "tokens": event.tokens_in + event.tokens_out,
            "latency_p50_ms": event.latency_p50_ms,
        }
        await self._session.execute(insert(demand_window).values(**row).on_conflict_do_nothing())

    async def save_forecast(self, event: DemandForecasted) -> None:
        """Keep the newest forecast per model and region ("" = the whole fleet)."""
        values = {
            "horizon_start": event.horizon_start,
            "requests_per_hour": list(event.requests_per_hour),
            "received_at": event.occurred_at,
        }
        statement = insert(forecast).values(model_id=event.model_id, region=event.region or "", **values)
        newer = forecast.c.horizon_start <= event.horizon_start
        await self._session.execute(
            statement.on_conflict_do_update(index_elements=["model_id", "region"], set_=values, where=newer)
        )

    async def prune_inputs(self, windows_ended_before: datetime, forecasts_before: datetime) -> None:
        """Drop demand windows and forecasts older than the cutoffs."""
        await self._session.execute(delete(demand_window).where(demand_window.c.window_end < windows_ended_before))
        await self._session.execute(delete(forecast).where(forecast.c.horizon_start < forecasts_before))

    async def load_servers(self) -> list[Server]:
        """Servers not released, with the models they hold and their latest utilisation."""
        models: defaultdict[str, list[str]] = defaultdict(list)
        for row in (await self._session.execute(select(server_model).order_by(server_model.c.model_id))).all():
            models[row.server_id].append(row.model_id)
        query = (
            select(fleet_server, server_utilization.c.utilization, server_utilization.c.throughput_rps)
            .outerjoin(server_utilization, server_utilization.c.server_id == fleet_server.c.server_id)
            .where(fleet_server.c.released_at.is_(None))
            .order_by(fleet_server.c.server_id)
        )
        return [
            Server(
                server_id=r.server_id,
                region=r.region,
                gpu_type=r.gpu_type,
                gpu_count=r.gpu_count,
                pricing_class=PricingClass(r.pricing_class),
                reported_cost_per_hour=r.cost_per_hour,
                models=tuple(models[r.server_id]),
                utilization=r.utilization,
                throughput_rps=r.throughput_rps,
            )
            for r in (await self._session.execute(query)).all()
        ]

    async def load_windows(self, since: datetime) -> list[DemandWindow]:
        """Demand windows that ended after `since`."""
        rows = (await self._session.execute(select(demand_window).where(demand_window.c.window_end > since))).all()
        return [
            DemandWindow(r.model_id, r.region, r.window_start, r.window_end, r.requests, r.tokens, r.latency_p50_ms)
            for r in rows
        ]

    async def load_forecasts(self) -> list[Forecast]:
        """The latest forecast per model and region."""
        rows = (await self._session.execute(select(forecast).order_by(forecast.c.model_id, forecast.c.region))).all()
        return [
            Forecast(r.model_id, r.region or None, r.horizon_start, tuple(float(v) for v in r.requests_per_hour))
            for r in rows
        ]

    async def record_capacity(self, event: CapacityChanged) -> None:
        """An applied capacity change: the servers it repriced, and the pool's GPUs per class."""
        for server in event.repriced:
            await self._session.execute(
                update(fleet_server)
                .where(fleet_server.c.server_id == server.server_id)
                .values(pricing_class=server.pricing_class, cost_per_hour=server.cost_per_hour)
            )
        values: dict[str, object] = {"on_demand": 0, "spot": 0, "reserved": 0}
        values |= {c: int(n) for c, n in event.gpus_by_class.items()}
        values |= {"request_id": event.request_id, "changed_at": event.occurred_at}
        if event.commitment_months is not None:
            values["commitment_months"] = event.commitment_months
        statement = insert(pool_capacity).values(region=event.region, gpu_type=event.gpu_type, **values)
        newer = pool_capacity.c.changed_at <= event.occurred_at
        await self._session.execute(
            statement.on_conflict_do_update(index_elements=["region", "gpu_type"], set_=values, where=newer)
        )

    async def load_capacity(self) -> list[PoolCapacity]:
        """Every pool's GPUs per pricing class as last announced."""
        rows = await self._session.execute(
            select(pool_capacity).order_by(pool_capacity.c.region, pool_capacity.c.gpu_type)
        )
        return [
            PoolCapacity(r.region, r.gpu_type, r.on_demand, r.spot, r.reserved, r.commitment_months) for r in rows.all()
        ]
