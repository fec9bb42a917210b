"""Operator actions: publish and edit prices, and apply a recommendation (never automatic).

The CLI calls these with the service's session factory; what they announce goes through the
outbox, so the running service's relay publishes it after the commit.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.cost.adapters import repository
from services.cost.adapters.orm import cost_report, outbox, recommendation
from services.cost.domain.pricing import GpuRate, RegionRate
from services.cost.requests import RecommendationRow, requests_for
from shared.events import PRICES, SCALING_ACTIONS, Event, GpuPrice, PricesPublished
from shared.outbox import add_to_outbox


async def _queue_prices(session: AsyncSession, source: str, now: datetime) -> PricesPublished:
    catalogue = await repository.load_catalogue(session)
    event = PricesPublished(
        source=source,
        occurred_at=now,
        prices=[
            GpuPrice(
                region=p.region,
                gpu_type=p.gpu_type,
                on_demand_per_hour=p.on_demand,
                spot_per_hour=p.spot,
                reserved_per_hour=p.reserved,
            )
            for p in catalogue.price_list()
        ],
    )
    await add_to_outbox(session, outbox, PRICES, event, key="prices")
    return event


async def publish_prices(sessions: async_sessionmaker[AsyncSession], source: str, now: datetime) -> PricesPublished:
    """Announce the current price list (on start)."""
    async with sessions.begin() as session:
        return await _queue_prices(session, source, now)


async def set_gpu_rate(
    sessions: async_sessionmaker[AsyncSession], rate: GpuRate, source: str, now: datetime
) -> PricesPublished:
    """Edit one GPU type's base prices and announce the new price list in the same transaction."""
    async with sessions.begin() as session:
        await repository.save_gpu_rate(session, rate, now)
        return await _queue_prices(session, source, now)


async def set_region_rate(
    sessions: async_sessionmaker[AsyncSession], rate: RegionRate, source: str, now: datetime
) -> PricesPublished:
    """Edit one region's multiplier or egress price and announce the new price list."""
    async with sessions.begin() as session:
        await repository.save_region_rate(session, rate, now)
        return await _queue_prices(session, source, now)


async def apply_recommendation(
    sessions: async_sessionmaker[AsyncSession], recommendation_id: str, request_id: str, source: str, now: datetime
) -> list[Event]:
    """Turn a recommendation into the scaling or allocation requests it stands for, and queue them.

    Applying twice returns the first application's requests and sends nothing again.
    Raises LookupError for an unknown id and ValueError for one that is no longer open.
    """
    async with sessions.begin() as session:
        await session.execute(text("set local lock_timeout = '10s'"))  # a stuck cycle fails the CLI, not hangs it
        row = (
            await session.execute(
                select(recommendation).where(recommendation.c.recommendation_id == recommendation_id).with_for_update()
            )
        ).first()
        if row is None:
            raise LookupError(f"no recommendation {recommendation_id}")
        if row.status == "applied":
            return [_parse(body) for body in row.applied_request or []]
        if row.status != "open":
            raise ValueError(f"recommendation {recommendation_id} is {row.status}, not open")
        rec = RecommendationRow(
            row.recommendation_id, row.kind, row.region, row.gpu_type, row.model_id, row.action, row.evidence
        )
        events = requests_for(rec, request_id, source, now)
        for event in events:
            key = event.model_id if hasattr(event, "model_id") else f"{rec.region}:{rec.gpu_type}"
            await add_to_outbox(session, outbox, SCALING_ACTIONS, event, key=str(key))
        await session.execute(
            update(recommendation)
            .where(recommendation.c.recommendation_id == recommendation_id)
            .values(status="applied", updated_at=now, applied_request=[e.model_dump(mode="json") for e in events])
        )
        return events


def _parse(body: dict[str, object]) -> Event:
    parsed: Event = SCALING_ACTIONS.adapter().validate_python(body)
    return parsed


async def latest_report(sessions: async_sessionmaker[AsyncSession]) -> dict[str, Any] | None:
    """The last report with its fleet snapshot and every model's regional plans, or None."""
    async with sessions() as session:
        body = await session.scalar(select(cost_report.c.body).order_by(cost_report.c.created_at.desc()).limit(1))
    return dict(body) if body is not None else None


async def open_recommendations(sessions: async_sessionmaker[AsyncSession]) -> list[dict[str, Any]]:
    """Recommendations an operator may apply, largest savings first."""
    async with sessions() as session:
        rows = await session.execute(
            select(recommendation)
            .where(recommendation.c.status == "open")
            .order_by(recommendation.c.savings_per_month.desc())
        )
        return [dict(row._mapping) for row in rows.all()]
