"""Server windows as ServerMetricsReported events, with the router's percentiles (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from services.monitor.domain.demand import DemandFigures
from services.monitor.domain.rounds import TargetRound
from services.monitor.domain.windows import ServerWindow
from services.monitor.settings import MonitorSettings
from shared.events import ServerMetricsReported

__all__ = ["DemandFigures", "server_events"]


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
