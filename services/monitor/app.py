"""Composition root of the monitor: `create_app(settings)` assembles `MonitorApp` on the shared runtime."""

from __future__ import annotations

from pathlib import Path

from faststream import FastStream
from opentelemetry.sdk.trace.export import SpanExporter

from services.monitor import handlers
from services.monitor.jobs import MonitorApp
from services.monitor.settings import MonitorSettings
from shared.migrations import upgrade
from shared.runtime import create_service

MIGRATIONS = Path(__file__).parent / "migrations"


def migrate(settings: MonitorSettings) -> None:
    """Bring the monitor's schema up to date (the deploy's migration job runs this)."""
    upgrade(MIGRATIONS, settings.database_url, settings.db_schema)


def create_app(settings: MonitorSettings, span_exporter: SpanExporter | None = None) -> tuple[FastStream, MonitorApp]:
    """The monitor as a FastStream application, and the service it runs (for tests)."""
    return create_service(settings, span_exporter, MonitorApp, handlers.register)
