"""Composition root of the monitor: `create_app(settings)` wires telemetry, database, broker and jobs."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from faststream import FastStream
from opentelemetry.sdk.trace.export import SpanExporter
from prometheus_client import CollectorRegistry

from services.monitor import handlers, jobs
from services.monitor.adapters.metrics import MonitorMetrics
from services.monitor.adapters.orm import outbox
from services.monitor.adapters.scraper import Scraper
from services.monitor.settings import MonitorSettings
from services.monitor.use_cases.scraping import Collector
from shared.broker import publish_event
from shared.events import SERVER_METRICS, ServerMetricsReported
from shared.jobs import Job, Jobs
from shared.migrations import upgrade
from shared.outbox import OutboxRelay
from shared.runtime import Runtime, create_runtime, service_app

MIGRATIONS = Path(__file__).parent / "migrations"


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
    background: Jobs = field(default_factory=Jobs)

    def jobs(self) -> Sequence[Job]:
        """The monitor's jobs as `jobs.py` declares them."""
        return jobs.declared(self.runtime, self.settings, self.metrics, self.collector, self.relay, utc_now)

    async def start_loops(self) -> None:
        """Start the monitor's jobs (after the broker is up)."""
        self.background.start(*self.jobs())

    async def stop(self) -> None:
        """Stop the jobs, then close the HTTP pool (the shared app releases the runtime)."""
        await self.background.stop()
        await self.scraper.close()


def create_monitor(settings: MonitorSettings, span_exporter: SpanExporter | None = None) -> Monitor:
    """Build the monitor's parts without starting anything."""
    runtime = create_runtime(settings, span_exporter)
    registry = runtime.registry
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
    return service_app(monitor.runtime, monitor.start_loops, monitor.stop), monitor.runtime
