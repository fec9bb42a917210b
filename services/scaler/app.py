"""Composition root of the scaler: `create_app(settings)` wires the shared runtime, handlers and jobs."""

from __future__ import annotations

from pathlib import Path

from faststream import FastStream
from opentelemetry.sdk.trace.export import SpanExporter

from services.scaler import handlers
from services.scaler.adapters.metrics import ScalerMetrics
from services.scaler.jobs import Worker
from services.scaler.settings import ScalerSettings
from shared.migrations import upgrade
from shared.runtime import Runtime, WorkerRuntime, worker_app

MIGRATIONS = Path(__file__).parent / "migrations"
ScalerRuntime = WorkerRuntime[Worker]


def migrate(settings: ScalerSettings) -> None:
    """Bring the scaler's schema up to date (the deploy's migration job runs this)."""
    upgrade(MIGRATIONS, settings.database_url, settings.db_schema)


def create_app(settings: ScalerSettings, span_exporter: SpanExporter | None = None) -> tuple[FastStream, ScalerRuntime]:
    """The scaler as a FastStream application, and the runtime it owns (for tests)."""

    def make_worker(runtime: Runtime) -> Worker:
        return Worker(runtime, settings, ScalerMetrics(runtime.registry))

    return worker_app(settings, span_exporter, make_worker, handlers.register)
