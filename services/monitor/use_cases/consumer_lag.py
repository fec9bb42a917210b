"""Periodic work besides scraping: consumer lag of the platform's groups (retention is shared/retention.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from services.monitor.adapters.lag_probe import consumer_lags
from services.monitor.adapters.metrics import MonitorMetrics
from services.monitor.adapters.repository import Database, monitor_store
from services.monitor.domain.fleet import Observation
from services.monitor.domain.rules import Metric
from services.monitor.settings import MonitorSettings
from services.monitor.use_cases.judging import Verdict, judge, rules_in_force


async def check_consumer_lag(
    sessions: Database,
    settings: MonitorSettings,
    metrics: MonitorMetrics,
    clock: Callable[[], datetime],
) -> Verdict:
    """Measure every platform group's lag, export it, and judge it against the lag rule."""
    lags = await consumer_lags(settings.kafka_bootstrap, settings.lag_group_prefix, settings.kafka_security)
    metrics.consumer_lag.clear()
    for group, lag in lags.items():
        metrics.consumer_lag.labels(group).set(lag)
    observations = [Observation(Metric.CONSUMER_LAG, {"group": g}, float(lag)) for g, lag in sorted(lags.items())]
    async with monitor_store(sessions).transaction() as repo:
        rules = await rules_in_force(repo, settings)
        return await judge(repo, rules, observations, clock(), settings.service_name)
