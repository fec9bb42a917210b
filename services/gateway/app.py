"""Composition root of the gateway: `create_app(settings)` assembles `GatewayApp` on the shared runtime."""

from __future__ import annotations

from pathlib import Path

from faststream import FastStream
from opentelemetry.sdk.trace.export import SpanExporter

from services.gateway import handlers
from services.gateway.jobs import GatewayApp
from services.gateway.settings import GatewaySettings
from shared.migrations import upgrade
from shared.runtime import create_service

MIGRATIONS = Path(__file__).parent / "migrations"


def migrate(settings: GatewaySettings) -> None:
    """Bring the gateway schema up to date (the deploy's migration job runs this)."""
    upgrade(MIGRATIONS, settings.database_url, settings.db_schema)


def create_app(settings: GatewaySettings, span_exporter: SpanExporter | None = None) -> tuple[FastStream, GatewayApp]:
    """The gateway as a FastStream application (HTTP served by one of its jobs), and the service it runs."""
    return create_service(settings, span_exporter, GatewayApp, handlers.register)
