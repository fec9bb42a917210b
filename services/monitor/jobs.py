"""The monitor assembled over the shared runtime, and its jobs: the outbox relay, scrape rounds,
consumer-lag checks and retention."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

from services.monitor.adapters.metrics import MonitorMetrics
from services.monitor.adapters.orm import alert_history, demand_window, inbox, metric_window, outbox
from services.monitor.adapters.scraper import Scraper
from services.monitor.settings import MonitorSettings
from services.monitor.use_cases import consumer_lag
from services.monitor.use_cases.scraping import Collector
from shared.broker import publish_event
from shared.events import SERVER_METRICS, ServerMetricsReported
from shared.jobs import Job, periodic
from shared.retention import Kept, messaging, retention_job
from shared.runtime import Runtime, ServiceApp


def utc_now() -> datetime:
    """The wall clock, the one place the monitor reads it."""
    return datetime.now(UTC)


def retained(settings: MonitorSettings) -> tuple[Kept, ...]:
    """What retention prunes: inbox, sent outbox, windows (kept `retention_s`) and alert history."""
    return (
        *messaging(inbox, outbox, settings),
        Kept(metric_window, "window_end", settings.retention_s),
        Kept(demand_window, "window_end", settings.retention_s),
        Kept(alert_history, "occurred_at", settings.history_retention_s),
    )


class MonitorApp(ServiceApp[MonitorSettings, MonitorMetrics]):
    """The monitor: its runtime, settings, metrics and relay, the scraper and the collector; scrape and lag rounds."""

    def __init__(self, runtime: Runtime, settings: MonitorSettings) -> None:
        super().__init__(runtime, settings, MonitorMetrics(runtime.registry), outbox)
        self.clock = utc_now
        self.scraper = Scraper(settings.scrape_concurrency, settings.scrape_timeout_s, runtime.http_trace_configs())
        self.collector = Collector(runtime.sessions, settings, self.scraper, self.metrics, self.publish, self.clock)

    async def publish(self, events: list[ServerMetricsReported]) -> None:
        """Publish a round's server metrics directly (the next round replaces them; no outbox)."""
        # Concurrent sends let the producer batch them; each is still acknowledged.
        broker = self.runtime.broker
        await asyncio.gather(*(publish_event(broker, SERVER_METRICS, e, key=e.server_id) for e in events))

    def rounds(self) -> Sequence[Job]:
        """Scrape rounds and consumer-lag checks; the first of each runs at once."""
        return (
            periodic("scrape round", self.settings.scrape_interval_s, self.scrape_round, immediately=True),
            periodic("consumer lag check", self.settings.lag_check_interval_s, self.lag_check, immediately=True),
        )

    def retained(self) -> Sequence[Kept]:
        """Inbox, sent outbox, windows and alert history."""
        return retained(self.settings)

    def retention(self) -> Job:
        """Retention on the monitor's clock; the first round runs at once."""
        return retention_job(self.runtime.sessions, self.settings, self.pruned(), self.clock, immediately=True)

    async def scrape_round(self) -> None:
        """Scrape every target once; wake the relay when the round raised alerts."""
        if (await self.collector.run_round()).alerts:
            self.relay.notify()

    async def lag_check(self) -> None:
        """Measure the platform's consumer lag once; wake the relay when it raised alerts."""
        verdict = await consumer_lag.check_consumer_lag(self.runtime.sessions, self.settings, self.metrics, self.clock)
        if verdict.alerts:
            self.relay.notify()

    async def release(self) -> None:
        """Close the scraper's HTTP pool."""
        await self.scraper.close()
