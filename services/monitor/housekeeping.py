"""Periodic work besides scraping: consumer lag of the platform's groups, and retention."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.monitor.adapters.lag_probe import consumer_lags
from services.monitor.adapters.metrics import MonitorMetrics
from services.monitor.adapters.orm import demand_window, inbox, metric_window, outbox
from services.monitor.domain.fleet import Observation
from services.monitor.domain.rules import Metric
from services.monitor.judging import Verdict, judge, rules_in_force
from services.monitor.settings import MonitorSettings


async def check_consumer_lag(
    sessions: async_sessionmaker[AsyncSession],
    settings: MonitorSettings,
    metrics: MonitorMetrics,
    clock: Callable[[], datetime],
) -> Verdict:
    """Measure every platform group's lag, export it, and judge it against the lag rule."""
    lags = await consumer_lags(settings.kafka_bootstrap, settings.lag_group_prefix)
    metrics.consumer_lag.clear()
    for group, lag in lags.items():
        metrics.consumer_lag.labels(group).set(lag)
    observations = [Observation(Metric.CONSUMER_LAG, {"group": g}, float(lag)) for g, lag in sorted(lags.items())]
    async with sessions.begin() as session:
        rules = await rules_in_force(session, settings)
        return await judge(session, rules, observations, clock(), settings.service_name)


async def prune(sessions: async_sessionmaker[AsyncSession], settings: MonitorSettings, now: datetime) -> int:
    """Delete metric windows, demand rows, inbox entries and sent outbox rows older than retention."""
    cutoff = now - timedelta(seconds=settings.retention_s)
    deleted = 0
    async with sessions.begin() as session:
        for statement in (
            delete(metric_window).where(metric_window.c.window_end < cutoff),
            delete(demand_window).where(demand_window.c.window_end < cutoff),
            delete(inbox).where(inbox.c.received_at < cutoff),
            delete(outbox).where(outbox.c.published_at < cutoff),
        ):
            result = await session.execute(statement)
            deleted += int(getattr(result, "rowcount", 0) or 0)
    return deleted
