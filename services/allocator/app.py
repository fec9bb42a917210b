"""Composition root of the allocator: `create_app(settings)` wires telemetry, database, broker,
the provisioner, the metrics and the jobs (outbox relay, retention)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from faststream import FastStream
from opentelemetry.sdk.trace.export import SpanExporter

from services.allocator import handlers
from services.allocator.adapters.config import load_fleet
from services.allocator.adapters.metrics import AllocatorMetrics
from services.allocator.adapters.orm import outbox
from services.allocator.adapters.pool_provisioner import PoolProvisioner
from services.allocator.adapters.provisioner import LocalProvisioner, Provisioner
from services.allocator.adapters.repository import seed
from services.allocator.jobs import Worker
from services.allocator.settings import AllocatorSettings, ProvisionerKind
from services.allocator.use_cases.allocator import Allocator
from shared.db import create_engine, session_factory
from shared.metrics import new_registry
from shared.migrations import upgrade
from shared.outbox import OutboxRelay
from shared.runtime import Runtime, create_runtime, service_app

MIGRATIONS = Path(__file__).parent / "migrations"


def migrate(settings: AllocatorSettings) -> None:
    """Bring the schema up to date and insert what is missing of the fleet seed (the migration job)."""
    upgrade(MIGRATIONS, settings.database_url, settings.db_schema)
    asyncio.run(_seed(settings))


async def _seed(settings: AllocatorSettings) -> None:
    engine = create_engine(settings.database_url, settings.db_schema, pool_size=1)
    try:
        async with session_factory(engine).begin() as session:
            await seed(session, load_fleet(settings.fleet_config))
    finally:
        await engine.dispose()


def provisioner_for(settings: AllocatorSettings) -> Provisioner:
    """The provisioner the settings name: local Triton processes, or a deployment's pool."""
    if settings.provisioner is ProvisionerKind.POOL:
        return PoolProvisioner(settings.triton_pool)
    return LocalProvisioner(settings.triton_base_port)


def build_allocator(settings: AllocatorSettings, runtime: Runtime, provisioner: Provisioner | None = None) -> Allocator:
    """The allocator's dependencies over the runtime (tests pass their own provisioner here)."""
    return Allocator(
        settings=settings,
        sessions=runtime.sessions,
        fleet=load_fleet(settings.fleet_config),
        provisioner=provisioner or provisioner_for(settings),
        relay=OutboxRelay(runtime.sessions, outbox, runtime.broker),
        metrics=AllocatorMetrics(new_registry()),
        new_suffix=lambda: uuid.uuid4().hex[:8],
    )


def create_app(
    settings: AllocatorSettings, span_exporter: SpanExporter | None = None, provisioner: Provisioner | None = None
) -> tuple[FastStream, Runtime]:
    """The allocator as a FastStream application and the runtime it owns (for tests)."""
    runtime = create_runtime(settings, span_exporter)
    allocator = build_allocator(settings, runtime, provisioner)
    handlers.register(runtime.broker, allocator, settings.group_id)
    worker = Worker(allocator)
    return service_app(runtime, worker.start, worker.stop, allocator.metrics.registry), runtime
