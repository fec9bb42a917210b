"""Composition root of the scaler: `create_app(settings)` wires telemetry, database, broker and worker."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from faststream import FastStream
from opentelemetry.sdk.trace.export import SpanExporter
from prometheus_client import CollectorRegistry

from services.scaler import handlers
from services.scaler.metrics import ScalerMetrics
from services.scaler.settings import ScalerSettings
from services.scaler.worker import Worker
from shared.metrics import new_registry, serve_metrics
from shared.migrations import upgrade
from shared.runtime import Runtime, create_runtime

MIGRATIONS = Path(__file__).parent / "migrations"


@dataclass
class ScalerRuntime(Runtime):
    """The runtime plus what the scaler holds: its metrics registry and background worker."""

    registry: CollectorRegistry | None = None
    worker: Worker | None = None


def migrate(settings: ScalerSettings) -> None:
    """Bring the scaler's schema up to date (the deploy's migration job runs this)."""
    upgrade(MIGRATIONS, settings.database_url, settings.db_schema)


def create_app(settings: ScalerSettings, span_exporter: SpanExporter | None = None) -> tuple[FastStream, ScalerRuntime]:
    """The scaler as a FastStream application, and the runtime it owns (for tests)."""
    base = create_runtime(settings, span_exporter)
    registry = new_registry()
    runtime = ScalerRuntime(**vars(base), registry=registry)
    worker = Worker(runtime, settings, ScalerMetrics(registry))
    runtime.worker = worker
    handlers.register(worker)

    def serve() -> None:
        serve_metrics(registry, settings.metrics_port, settings.metrics_host)

    app = FastStream(
        runtime.broker, on_startup=[serve], after_startup=[worker.start], on_shutdown=[worker.stop, runtime.close]
    )
    return app, runtime
