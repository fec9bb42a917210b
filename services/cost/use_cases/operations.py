"""Operator actions: publish and edit prices, and apply a recommendation (never automatic).

The CLI calls these with the service's session factory; what they announce goes through the
outbox, so the running service's relay publishes it after the commit.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from services.cost.adapters.repository import CostRepository, Database, cost_store
from services.cost.domain.applying import requests_for
from services.cost.domain.pricing import GpuRate, RegionRate
from shared.events import PRICES, SCALING_ACTIONS, Event, GpuPrice, PricesPublished

# Applying waits this long for a cycle holding the recommendation's row: a stuck cycle fails the CLI, not hangs it.
APPLY_LOCK_TIMEOUT_S = 10.0


async def _queue_prices(repo: CostRepository, source: str, now: datetime) -> PricesPublished:
    catalogue = await repo.load_catalogue()
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
    await repo.announce(PRICES, event, key="prices")
    return event


async def publish_prices(sessions: Database, source: str, now: datetime) -> PricesPublished:
    """Announce the current price list (on start)."""
    async with cost_store(sessions).transaction() as repo:
        return await _queue_prices(repo, source, now)


async def set_gpu_rate(sessions: Database, rate: GpuRate, source: str, now: datetime) -> PricesPublished:
    """Edit one GPU type's base prices and announce the new price list in the same transaction."""
    async with cost_store(sessions).transaction() as repo:
        await repo.save_gpu_rate(rate, now)
        return await _queue_prices(repo, source, now)


async def set_region_rate(sessions: Database, rate: RegionRate, source: str, now: datetime) -> PricesPublished:
    """Edit one region's multiplier or egress price and announce the new price list."""
    async with cost_store(sessions).transaction() as repo:
        await repo.save_region_rate(rate, now)
        return await _queue_prices(repo, source, now)


async def apply_recommendation(
    sessions: Database, recommendation_id: str, request_id: str, source: str, now: datetime
) -> list[Event]:
    """Turn a recommendation into the scaling or allocation requests it stands for, and queue them.

    Applying twice returns the first application's requests and sends nothing again.
    Raises LookupError for an unknown id and ValueError for one that is no longer open.
    """
    async with cost_store(sessions).transaction() as repo:
        rec = await repo.recommendation_for_update(recommendation_id, APPLY_LOCK_TIMEOUT_S)
        if rec is None:
            raise LookupError(f"no recommendation {recommendation_id}")
        if rec.status == "applied":
            return [_parse(body) for body in rec.applied_request or []]
        if rec.status != "open":
            raise ValueError(f"recommendation {recommendation_id} is {rec.status}, not open")
        events = requests_for(rec, request_id, source, now)
        for event in events:
            key = event.model_id if hasattr(event, "model_id") else f"{rec.region}:{rec.gpu_type}"
            await repo.announce(SCALING_ACTIONS, event, key=str(key))
        await repo.mark_applied(recommendation_id, [e.model_dump(mode="json") for e in events], now)
        return events


def _parse(body: dict[str, object]) -> Event:
    parsed: Event = SCALING_ACTIONS.adapter().validate_python(body)
    return parsed


async def latest_report(sessions: Database) -> dict[str, Any] | None:
    """The last report with its fleet snapshot and every model's regional plans, or None."""
    async with cost_store(sessions).transaction() as repo:
        return await repo.latest_report_body()


async def open_recommendations(sessions: Database) -> list[dict[str, Any]]:
    """Recommendations an operator may apply, largest savings first."""
    async with cost_store(sessions).transaction() as repo:
        return await repo.open_recommendations()


async def tenant_chargeback(sessions: Database, since: date, tenant: str | None = None) -> list[dict[str, Any]]:
    """Cost per tenant per model per day from `since` on (for `llmfleet cost tenants`)."""
    async with cost_store(sessions).transaction() as repo:
        return await repo.chargeback(since, tenant)
