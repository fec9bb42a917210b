"""Composition root of the scaler: `create_app(settings)` assembles `ScalerApp` on the shared runtime."""

from __future__ import annotations

from pathlib import Path

from faststream import FastStream
from opentelemetry.sdk.trace.export import SpanExporter

from services.scaler import handlers
from services.scaler.jobs import ScalerApp
from services.scaler.settings import ScalerSettings
from shared.migrations import upgrade
from shared.runtime import create_service

MIGRATIONS = Path(__file__).parent / "migrations"


def migrate(settings: ScalerSettings) -> None:
    """Bring the scaler's schema up to date (the deploy's migration job runs this)."""
    upgrade(MIGRATIONS, settings.database_url, settings.db_schema)


def create_app(settings: ScalerSettings, span_exporter: SpanExporter | None = None) -> tuple[FastStream, ScalerApp]:
    """The scaler as a FastStream application, and the service it runs (for tests)."""
    return create_service(settings, span_exporter, ScalerApp, handlers.register)
