"""The window tables (the router's demand windows, the scrapes' metric windows)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.monitor.adapters.orm import demand_window, metric_window, scrape_target, server_model
from services.monitor.domain.cost import ServerCost
from services.monitor.domain.demand import DemandFigures
from services.monitor.domain.rounds import TargetRound
from shared.events import DemandWindowReported


class WindowTables:
    """SQL of windows (part of the SQL repository; the caller owns the transaction)."""

    _session: AsyncSession

    async def model_servers(self, model_id: str, region: str) -> list[ServerCost]:
        """The price facts of the servers holding a model in a region."""
        holding = select(server_model.c.server_id).where(server_model.c.model_id == model_id)
        rows = await self._session.execute(
            select(scrape_target).where(scrape_target.c.server_id.in_(holding), scrape_target.c.region == region)
        )
        targets = rows.all()
        models_per_server: dict[str, int] = {}
        for row in await self._session.execute(
            select(server_model.c.server_id).where(server_model.c.server_id.in_([t.server_id for t in targets]))
        ):
            models_per_server[row.server_id] = models_per_server.get(row.server_id, 0) + 1
        return [
            ServerCost(
                t.region,
                t.gpu_type,
                t.gpu_count,
                t.pricing_class,
                t.cost_per_hour,
                models_per_server.get(t.server_id, 1),
            )
            for t in targets
        ]

    async def add_demand_window(self, event: DemandWindowReported, cost_per_token: float | None) -> None:
        """Store the router's window with the cost per token derived on arrival."""
        await self._session.execute(
            demand_window.insert().values(
                event_id=event.event_id,
                model_id=event.model_id,
                region=event.region,
                window_start=event.window_start,
                window_end=event.window_end,
                requests=event.requests,
                failed=event.failed,
                rejected=event.rejected,
                tokens=event.tokens_in + event.tokens_out,
                latency_p50_ms=event.latency_p50_ms,
                latency_p95_ms=event.latency_p95_ms,
                latency_p99_ms=event.latency_p99_ms,
                cost_per_token=cost_per_token,
            )
        )

    async def latest_demand(self, since: datetime) -> dict[tuple[str, str], DemandFigures]:
        """The newest demand window per (model, region) that ended at or after `since`."""
        d = demand_window.c
        query = (
            select(d.model_id, d.region, d.latency_p50_ms, d.latency_p95_ms, d.latency_p99_ms, d.cost_per_token)
            .where(d.window_end >= since)
            .distinct(d.model_id, d.region)
            .order_by(d.model_id, d.region, d.window_end.desc())
        )
        return {
            (r.model_id, r.region): DemandFigures(
                r.latency_p50_ms, r.latency_p95_ms, r.latency_p99_ms, r.cost_per_token
            )
            for r in await self._session.execute(query)
        }

    async def store_windows(self, rounds: Sequence[TargetRound], per_server: dict[str, float], now: datetime) -> None:
        """One metric_window row per server (model_id '') and per model it serves."""
        rows = [
            {
                "server_id": r.target.server_id,
                "model_id": r.target.model_id(w.model_id) if w.model_id else "",
                "region": r.target.region,
                "gpu_type": r.target.gpu_type,
                "window_end": now,
                "window_s": w.window_s,
                "utilization": w.utilization,
                "utilization_derived": w.utilization_derived,
                "queue_depth": w.queue_depth,
                "requests_ok": w.requests_ok,
                "requests_failed": w.requests_failed,
                "throughput_rps": w.throughput_rps,
                "error_rate": w.error_rate,
                "latency_avg_ms": w.latency_avg_ms,
                "cost_per_hour": per_server.get(r.target.server_id) if w.model_id is None else None,
            }
            for r in rounds
            for w in r.windows
        ]
        if rows:
            await self._session.execute(metric_window.insert(), rows)
