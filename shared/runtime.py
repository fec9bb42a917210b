"""What every service's `create_app` needs: tracing, a broker and a database engine, built once."""

from __future__ import annotations

from dataclasses import dataclass

from faststream.kafka import KafkaBroker
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.broker import create_broker
from shared.db import create_engine, session_factory
from shared.settings import ServiceSettings


@dataclass
class Runtime:
    """The I/O a service holds for its lifetime; created in `create_app`, never at import."""

    settings: ServiceSettings
    tracer_provider: TracerProvider
    broker: KafkaBroker
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]

    async def close(self) -> None:
        """Release the database pool and flush spans."""
        await self.engine.dispose()
        self.tracer_provider.force_flush()


def create_runtime(settings: ServiceSettings, span_exporter: SpanExporter | None = None) -> Runtime:
    """Build the service's tracer provider, Kafka broker and database engine from settings."""
    from shared.telemetry import create_tracer_provider

    provider = create_tracer_provider(settings.service_name, span_exporter)
    engine = create_engine(settings.database_url, settings.db_schema, settings.db_pool_size)
    return Runtime(
        settings=settings,
        tracer_provider=provider,
        broker=create_broker(settings.kafka_bootstrap, f"llmfleet-{settings.service_name}", provider),
        engine=engine,
        sessions=session_factory(engine),
    )
