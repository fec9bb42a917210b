"""Composition root of the cost service: `create_app(settings)` wires the shared runtime, handlers and jobs."""

from __future__ import annotations

from pathlib import Path

from faststream import FastStream
from opentelemetry.sdk.trace.export import SpanExporter

from services.cost import handlers
from services.cost.adapters.metrics import CostMetrics
from services.cost.jobs import Worker
from services.cost.settings import CostSettings
from shared.migrations import upgrade
from shared.runtime import Runtime, WorkerRuntime, worker_app

MIGRATIONS = Path(__file__).parent / "migrations"
CostRuntime = WorkerRuntime[Worker]


def migrate(settings: CostSettings) -> None:
    """Bring the cost schema up to date (the deploy's migration job runs this)."""
    upgrade(MIGRATIONS, settings.database_url, settings.db_schema)


def create_app(settings: CostSettings, span_exporter: SpanExporter | None = None) -> tuple[FastStream, CostRuntime]:
    """The cost service as a FastStream application, and the runtime it owns (for tests)."""

    def make_worker(runtime: Runtime) -> Worker:
        return Worker(runtime, settings, CostMetrics(runtime.registry))

    return worker_app(settings, span_exporter, make_worker, handlers.register)
