"""Forecast rows and demand-history compaction in the scaler's tables."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.scaler.adapters.orm import demand_window, forecast
from services.scaler.domain.series import DemandSample, compact
from shared.events import DemandForecasted


class HistoryTables:
    """SQL of forecasts and of compacting old demand (part of the SQL repository; the caller owns the transaction)."""

    _session: AsyncSession

    async def save_forecast(self, event: DemandForecasted, bucket_s: int, extra: dict[str, dict[str, float]]) -> None:
        """Record a forecast as published, with the ensemble's weights and back-test errors."""
        await self._session.execute(
            forecast.insert().values(
                event_id=event.event_id,
                model_id=event.model_id,
                region=event.region or "",
                made_at=event.occurred_at,
                horizon_start=event.horizon_start,
                bucket_s=bucket_s,
                requests_per_hour=event.requests_per_hour,
                confidence=event.confidence,
                predictors=event.predictors,
                weights=extra["weights"],
                backtest_smape=extra["errors"],
            )
        )

    async def forecasted_horizons(self, since: datetime) -> set[tuple[str, str, datetime]]:
        """(model, region, horizon start) of forecasts already made since `since`."""
        query = select(forecast.c.model_id, forecast.c.region, forecast.c.horizon_start).where(
            forecast.c.horizon_start >= since
        )
        return {(m, r, h) for m, r, h in await self._session.execute(query)}

    async def compact_history(self, before: datetime, bucket_s: int) -> int:
        """Replace raw windows older than `before` by one window per model, region and bucket; rows removed."""
        columns = demand_window.c
        aged = (
            await self._session.execute(select(demand_window).where(columns.window_start < before).with_for_update())
        ).all()
        if not aged:
            return 0
        samples = [
            DemandSample(r.model_id, r.region, r.window_start, r.window_end, r.requests, r.tokens_in, r.tokens_out,
                         r.latency_p95_ms)
            for r in aged
        ]  # fmt: skip
        merged = compact(samples, before, bucket_s)
        if len(merged) == len(aged):
            return 0  # already one row per bucket
        await self._session.execute(delete(demand_window).where(columns.event_id.in_([r.event_id for r in aged])))
        await self._session.execute(
            demand_window.insert(),
            [
                {
                    # A stable id: compacting the same hour again yields the same row.
                    "event_id": uuid.uuid5(
                        uuid.NAMESPACE_URL, f"scaler:{s.model_id}:{s.region}:{s.window_start.isoformat()}"
                    ),
                    "model_id": s.model_id,
                    "region": s.region,
                    "window_start": s.window_start,
                    "window_end": s.window_end,
                    "requests": s.requests,
                    "ok": s.requests,
                    "rejected": 0,
                    "failed": 0,
                    "tokens_in": s.tokens_in,
                    "tokens_out": s.tokens_out,
                    "latency_p95_ms": s.latency_p95_ms,
                }
                for s in merged
            ],
        )
        return len(aged) - len(merged)

    async def drop_old_forecasts(self, before: datetime) -> None:
        """Forecasts older than the history kept are no longer needed to explain anything."""
        await self._session.execute(delete(forecast).where(forecast.c.made_at < before))
