"""Server windows as table rows and as ServerMetricsReported events, with the router's percentiles."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.monitor.adapters.orm import demand_window, metric_window
from services.monitor.domain.rounds import TargetRound
from services.monitor.domain.windows import ServerWindow
from services.monitor.settings import MonitorSettings
from shared.events import ServerMetricsReported


@dataclass(frozen=True)
class DemandFigures:
    """The router's latest percentiles and the cost per token for one model in one region."""

    p50: float | None
    p95: float | None
    p99: float | None
    cost_per_token: float | None


async def latest_demand(session: AsyncSession, now: datetime, window_s: float) -> dict[tuple[str, str], DemandFigures]:
    """The newest demand window per (model, region) that ended within the sliding window."""
    d = demand_window.c
    query = (
        select(d.model_id, d.region, d.latency_p50_ms, d.latency_p95_ms, d.latency_p99_ms, d.cost_per_token)
        .where(d.window_end >= now - timedelta(seconds=window_s))
        .distinct(d.model_id, d.region)
        .order_by(d.model_id, d.region, d.window_end.desc())
    )
    return {
        (r.model_id, r.region): DemandFigures(r.latency_p50_ms, r.latency_p95_ms, r.latency_p99_ms, r.cost_per_token)
        for r in await session.execute(query)
    }


async def store_windows(
    session: AsyncSession, rounds: Sequence[TargetRound], per_server: dict[str, float], now: datetime
) -> None:
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
        await session.execute(metric_window.insert(), rows)


def server_events(
    rounds: Sequence[TargetRound],
    latest: dict[tuple[str, str], DemandFigures],
    settings: MonitorSettings,
    now: datetime,
) -> list[ServerMetricsReported]:
    """An event per server window; model windows carry the router's percentiles for that model."""
    events = []
    for r in rounds:
        for w in r.windows:
            model_id = r.target.model_id(w.model_id) if w.model_id else None
            figures = latest.get((model_id, r.target.region)) if model_id else None
            events.append(_event(r, w, model_id, figures, settings.service_name, now))
    return events


def _event(
    r: TargetRound, w: ServerWindow, model_id: str | None, figures: DemandFigures | None, source: str, now: datetime
) -> ServerMetricsReported:
    return ServerMetricsReported(
        source=source,
        occurred_at=now,
        server_id=r.target.server_id,
        model_id=model_id,
        region=r.target.region,
        gpu_type=r.target.gpu_type,
        window_s=w.window_s,
        utilization=w.utilization,
        utilization_derived=w.utilization_derived,
        queue_depth=w.queue_depth,
        requests_ok=w.requests_ok,
        requests_failed=w.requests_failed,
        throughput_rps=w.throughput_rps,
        latency_p50_ms=figures.p50 if figures else None,
        latency_p95_ms=figures.p95 if figures else None,
        latency_p99_ms=figures.p99 if figures else None,
        cost_per_token=figures.cost_per_token if figures else None,
        error_rate=w.error_rate,
        latency_avg_ms=w.latency_avg_ms,
        gpu_memory_used_fraction=w.gpu_memory_used_fraction,
    )
