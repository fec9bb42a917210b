"""The demand windows the router reports: stored once each, read back per bucket."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.scaler.adapters.orm import demand_window
from shared.events import DemandWindowReported

Key = tuple[str, str]  # (model id, region)


class DemandTables:
    """SQL of the demand windows (part of the SQL repository; the caller owns the transaction)."""

    _session: AsyncSession

    async def save_demand_window(self, event: DemandWindowReported) -> None:
        """Store one demand window as the router reported it."""
        await self._session.execute(
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

    async def demand_counts(self, since: datetime, until: datetime, bucket_s: int) -> dict[Key, dict[int, float]]:
        """Requests per bucket number for every model and region with windows in [since, until)."""
        bucket = func.floor(func.extract("epoch", demand_window.c.window_start) / bucket_s).label("bucket")
        query = (
            select(demand_window.c.model_id, demand_window.c.region, bucket, func.sum(demand_window.c.requests))
            .where(demand_window.c.window_start >= since, demand_window.c.window_start < until)
            .group_by(demand_window.c.model_id, demand_window.c.region, bucket)
        )
        counts: dict[Key, dict[int, float]] = defaultdict(dict)
        for model_id, region, index, requests in await self._session.execute(query):
            counts[(model_id, region)][int(index)] = float(requests)
        return counts

    async def last_requests(self, since: datetime) -> dict[Key, datetime]:
        """When each model last had a request in each region, for those with one since `since`."""
        query = (
            select(demand_window.c.model_id, demand_window.c.region, func.max(demand_window.c.window_end))
            .where(demand_window.c.requests > 0, demand_window.c.window_start >= since)
            .group_by(demand_window.c.model_id, demand_window.c.region)
        )
        return {(m, r): at for m, r, at in await self._session.execute(query)}
