"""Composition root of the allocator: `create_app(settings)` assembles `AllocatorApp` on the shared runtime,
with the provisioner the settings name."""

from __future__ import annotations

import asyncio
from pathlib import Path

from faststream import FastStream
from opentelemetry.sdk.trace.export import SpanExporter
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.allocator import handlers
from services.allocator.adapters.config import load_fleet
from services.allocator.adapters.pool_provisioner import PoolProvisioner
from services.allocator.adapters.provisioner import LocalProvisioner, Provisioner
from services.allocator.adapters.repository import seed
from services.allocator.jobs import AllocatorApp
from services.allocator.settings import AllocatorSettings, ProvisionerKind
from shared.db import create_engine, session_factory
from shared.migrations import upgrade
from shared.runtime import Runtime, create_service

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


def provisioner_for(settings: AllocatorSettings, sessions: async_sessionmaker[AsyncSession]) -> Provisioner:
    """The provisioner the settings name: local Triton processes, or a deployment's pool (assignments on record)."""
    if settings.provisioner is ProvisionerKind.POOL:
        return PoolProvisioner(settings.triton_pool, sessions)
    return LocalProvisioner(settings.triton_base_port, stream_variants=settings.load_stream_variants)


def create_app(
    settings: AllocatorSettings, span_exporter: SpanExporter | None = None, provisioner: Provisioner | None = None
) -> tuple[FastStream, AllocatorApp]:
    """The allocator as a FastStream application, and the service it runs (tests may pass their provisioner)."""

    def assemble(runtime: Runtime, settings: AllocatorSettings) -> AllocatorApp:
        return AllocatorApp(runtime, settings, provisioner or provisioner_for(settings, runtime.sessions))

    return create_service(settings, span_exporter, assemble, handlers.register)
