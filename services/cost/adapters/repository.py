"""Reading the cost service's state into domain objects, and writing the catalogue."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.cost.adapters.orm import (
    demand_window,
    fleet_server,
    forecast,
    gpu_price,
    region_price,
    server_model,
    server_utilization,
)
from services.cost.domain.cycle import Forecast
from services.cost.domain.fleet import DemandWindow, Server
from services.cost.domain.pricing import Catalogue, GpuRate, PricingClass, RegionRate


async def load_catalogue(session: AsyncSession) -> Catalogue:
    """The pricing catalogue as the tables hold it now."""
    gpus = (await session.execute(select(gpu_price).order_by(gpu_price.c.gpu_type))).all()
    regions = (await session.execute(select(region_price).order_by(region_price.c.region))).all()
    return Catalogue(
        gpus=tuple(GpuRate(r.gpu_type, r.on_demand, r.spot, r.reserved) for r in gpus),
        regions=tuple(RegionRate(r.region, r.multiplier, r.egress_per_gb) for r in regions),
    )


async def save_gpu_rate(session: AsyncSession, rate: GpuRate, now: datetime) -> None:
    """Insert or replace one GPU type's base prices."""
    values = {"on_demand": rate.on_demand, "spot": rate.spot, "reserved": rate.reserved, "updated_at": now}
    statement = insert(gpu_price).values(gpu_type=rate.gpu_type, **values)
    await session.execute(statement.on_conflict_do_update(index_elements=["gpu_type"], set_=values))


async def save_region_rate(session: AsyncSession, rate: RegionRate, now: datetime) -> None:
    """Insert or replace one region's multiplier and egress price."""
    values = {"multiplier": rate.multiplier, "egress_per_gb": rate.egress_per_gb, "updated_at": now}
    statement = insert(region_price).values(region=rate.region, **values)
    await session.execute(statement.on_conflict_do_update(index_elements=["region"], set_=values))


async def load_servers(session: AsyncSession) -> list[Server]:
    """Servers not released, with the models they hold and their latest utilisation."""
    models: defaultdict[str, list[str]] = defaultdict(list)
    for row in (await session.execute(select(server_model).order_by(server_model.c.model_id))).all():
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
        for r in (await session.execute(query)).all()
    ]


async def load_windows(session: AsyncSession, since: datetime) -> list[DemandWindow]:
    """Demand windows that ended after `since`."""
    rows = (await session.execute(select(demand_window).where(demand_window.c.window_end > since))).all()
    return [
        DemandWindow(r.model_id, r.region, r.window_start, r.window_end, r.requests, r.tokens, r.latency_p50_ms)
        for r in rows
    ]


async def load_forecasts(session: AsyncSession) -> list[Forecast]:
    """The latest forecast per model and region."""
    rows = (await session.execute(select(forecast).order_by(forecast.c.model_id, forecast.c.region))).all()
    return [
        Forecast(r.model_id, r.region or None, r.horizon_start, tuple(float(v) for v in r.requests_per_hour))
        for r in rows
    ]
