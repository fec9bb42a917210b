"""Composition root of the cost service: `create_app(settings)` assembles `CostApp` on the shared runtime."""

from __future__ import annotations

from pathlib import Path

from faststream import FastStream
from opentelemetry.sdk.trace.export import SpanExporter

from services.cost import handlers
from services.cost.jobs import CostApp
from services.cost.settings import CostSettings
from shared.migrations import upgrade
from shared.runtime import create_service

MIGRATIONS = Path(__file__).parent / "migrations"


def migrate(settings: CostSettings) -> None:
    """Bring the cost schema up to date (the deploy's migration job runs this)."""
    upgrade(MIGRATIONS, settings.database_url, settings.db_schema)


def create_app(settings: CostSettings, span_exporter: SpanExporter | None = None) -> tuple[FastStream, CostApp]:
    """The cost service as a FastStream application, and the service it runs (for tests)."""
    return create_service(settings, span_exporter, CostApp, handlers.register)
