"""Composition root of the monitor: `create_app(settings)` wires telemetry, database, broker and loops."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from faststream import FastStream
from opentelemetry.sdk.trace.export import SpanExporter
from prometheus_client import CollectorRegistry

from services.monitor import handlers, housekeeping
from services.monitor.adapters.metrics import MonitorMetrics
from services.monitor.adapters.orm import outbox
from services.monitor.adapters.scraper import Scraper
from services.monitor.background import Background, every
from services.monitor.collector import Collector
from services.monitor.settings import MonitorSettings
from shared.broker import publish_event
from shared.events import SERVER_METRICS, ServerMetricsReported
from shared.metrics import new_registry, serve_metrics
from shared.migrations import upgrade
from shared.outbox import OutboxRelay
from shared.runtime import Runtime, create_runtime

MIGRATIONS = Path(__file__).parent / "migrations"
RETENTION_EVERY_S = 600.0


def migrate(settings: MonitorSettings) -> None:
    """Bring the monitor's schema up to date (the deploy's migration job runs this)."""
    upgrade(MIGRATIONS, settings.database_url, settings.db_schema)


def utc_now() -> datetime:
    """The wall clock, the one place the monitor reads it."""
    return datetime.now(UTC)


@dataclass
class Monitor:
    """Everything a running monitor holds: the shared runtime plus its collector, relay and loops."""

    settings: MonitorSettings
    runtime: Runtime
    registry: CollectorRegistry
    metrics: MonitorMetrics
    scraper: Scraper
    collector: Collector
    relay: OutboxRelay
    background: Background = field(default_factory=Background)

    async def start_loops(self) -> None:
        """Start scraping, lag checks, retention and the outbox relay (after the broker is up)."""
        s = self.settings
        serve_metrics(self.registry, s.metrics_port, s.metrics_host)
        self.background.start(
            self.relay.run(poll_interval_s=0.5),
            every(s.scrape_interval_s, self._round, "scrape round"),
            every(s.lag_check_interval_s, self._lag, "consumer lag check"),
            every(RETENTION_EVERY_S, self._prune, "retention"),
        )

    async def stop(self) -> None:
        """Stop the loops and the HTTP pool, then release the runtime."""
        await self.background.stop()
        await self.scraper.close()
        await self.runtime.close()

    async def _round(self) -> None:
        if (await self.collector.run_round()).alerts:
            self.relay.notify()

    async def _lag(self) -> None:
        verdict = await housekeeping.check_consumer_lag(self.runtime.sessions, self.settings, self.metrics, utc_now)
        if verdict.alerts:
            self.relay.notify()

    async def _prune(self) -> None:
        await housekeeping.prune(self.runtime.sessions, self.settings, utc_now())


def create_monitor(settings: MonitorSettings, span_exporter: SpanExporter | None = None) -> Monitor:
    """Build the monitor's parts without starting anything."""
    runtime = create_runtime(settings, span_exporter)
    registry = new_registry()
    metrics = MonitorMetrics(registry)
    scraper = Scraper(settings.scrape_concurrency, settings.scrape_timeout_s)
    relay = OutboxRelay(runtime.sessions, outbox, runtime.broker)

    async def publish(events: list[ServerMetricsReported]) -> None:
        # Concurrent sends let the producer batch them; each is still acknowledged.
        await asyncio.gather(*(publish_event(runtime.broker, SERVER_METRICS, e, key=e.server_id) for e in events))

    collector = Collector(runtime.sessions, settings, scraper, metrics, publish, utc_now)
    handlers.register(runtime, settings, metrics, relay.notify)
    return Monitor(settings, runtime, registry, metrics, scraper, collector, relay)


def create_app(settings: MonitorSettings, span_exporter: SpanExporter | None = None) -> tuple[FastStream, Runtime]:
    """The monitor as a FastStream application, and the runtime it owns (for tests)."""
    monitor = create_monitor(settings, span_exporter)
    app = FastStream(monitor.runtime.broker, after_startup=[monitor.start_loops], on_shutdown=[monitor.stop])
    return app, monitor.runtime
