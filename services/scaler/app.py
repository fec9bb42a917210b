"""Composition root of the scaler: `create_app(settings)` wires telemetry, database and broker."""

from __future__ import annotations

from pathlib import Path

from faststream import FastStream
from opentelemetry.sdk.trace.export import SpanExporter

from services.scaler import handlers
from services.scaler.settings import ScalerSettings
from shared.migrations import upgrade
from shared.runtime import Runtime, create_runtime

MIGRATIONS = Path(__file__).parent / "migrations"


def migrate(settings: ScalerSettings) -> None:
    """Bring the scaler's schema up to date (the deploy's migration job runs this)."""
    upgrade(MIGRATIONS, settings.database_url, settings.db_schema)


def create_app(settings: ScalerSettings, span_exporter: SpanExporter | None = None) -> tuple[FastStream, Runtime]:
    """The scaler as a FastStream application, and the runtime it owns (for tests)."""
    runtime = create_runtime(settings, span_exporter)
    handlers.register(runtime)
    return FastStream(runtime.broker, on_shutdown=[runtime.close]), runtime
