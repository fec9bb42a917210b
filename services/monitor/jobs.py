"""The monitor's jobs: the outbox relay, scrape rounds, consumer-lag checks and retention, run by the shared runtime."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from services.monitor.adapters.metrics import MonitorMetrics
from services.monitor.adapters.orm import alert_history, demand_window, inbox, metric_window, outbox
from services.monitor.settings import MonitorSettings
from services.monitor.use_cases import consumer_lag
from services.monitor.use_cases.scraping import Collector
from shared.jobs import Job, loop, periodic
from shared.outbox import OutboxRelay
from shared.retention import Kept, messaging, retention_job
from shared.runtime import Runtime


def retained(settings: MonitorSettings) -> tuple[Kept, ...]:
    """What retention prunes: inbox, sent outbox, windows (kept `retention_s`) and alert history."""
    return (
        *messaging(inbox, outbox, settings),
        Kept(metric_window, "window_end", settings.retention_s),
        Kept(demand_window, "window_end", settings.retention_s),
        Kept(alert_history, "occurred_at", settings.history_retention_s),
    )


def declared(
    runtime: Runtime,
    settings: MonitorSettings,
    metrics: MonitorMetrics,
    collector: Collector,
    relay: OutboxRelay,
    clock: Callable[[], datetime],
) -> tuple[Job, ...]:
    """The relay, scrape rounds, lag checks and retention; the first rounds run at once."""

    async def scrape_round() -> None:
        if (await collector.run_round()).alerts:
            relay.notify()

    async def lag_check() -> None:
        verdict = await consumer_lag.check_consumer_lag(runtime.sessions, settings, metrics, clock)
        if verdict.alerts:
            relay.notify()

    return (
        loop("monitor outbox relay", lambda: relay.run(poll_interval_s=0.5)),
        periodic("scrape round", settings.scrape_interval_s, scrape_round, immediately=True),
        periodic("consumer lag check", settings.lag_check_interval_s, lag_check, immediately=True),
        retention_job(runtime.sessions, settings, retained(settings), clock, immediately=True),
    )
