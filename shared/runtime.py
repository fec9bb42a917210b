"""What every service's `create_app` needs, built once: tracing, broker, database, metrics, probes, jobs.

`create_runtime(settings)` makes the I/O a service holds; a `Worker` declares the service's
background jobs (`jobs()`, and `prepare()` to run once first); `service_app(...)` turns the
two into the FastStream application that `shared.main` runs: metrics and probes served at
start-up, the worker started once the broker is up, everything stopped and released on SIGTERM.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from faststream import FastStream
from faststream.kafka import KafkaBroker
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.broker import create_broker
from shared.db import create_engine, session_factory
from shared.jobs import Job, Jobs, OnFailure, exit_loudly
from shared.metrics import new_registry, serve_metrics
from shared.settings import ServiceSettings

Hook = Callable[[], Awaitable[None]]


@dataclass
class Runtime:
    """The I/O a service holds for its lifetime; created in `create_app`, never at import."""

    settings: ServiceSettings
    tracer_provider: TracerProvider
    broker: KafkaBroker
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    registry: CollectorRegistry = field(default_factory=new_registry)
    started: bool = False

    def ready(self) -> tuple[bool, str]:
        """The /ready check: started, and the broker connected (a flag read, no I/O)."""
        if not self.started:
            return False, "starting"
        if not self.broker.running:
            return False, "broker not connected"
        return True, "ready"

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


class Worker:
    """A service's background work: subclasses declare `jobs()` (and `prepare()`); the shared runtime runs them."""

    def __init__(self, on_failure: OnFailure = exit_loudly) -> None:
        self.background = Jobs(on_failure)

    def jobs(self) -> Sequence[Job]:
        """The service's jobs (periodic rounds, the outbox relay)."""
        return ()

    async def prepare(self) -> None:
        """What runs once before the jobs start (the broker is up by then)."""

    async def start(self) -> None:
        """Prepare, then start every job under supervision."""
        await self.prepare()
        self.background.start(*self.jobs())

    async def stop(self) -> None:
        """Stop every job (a round in progress finishes first)."""
        await self.background.stop()


def service_app(runtime: Runtime, start: Hook, stop: Hook, registry: CollectorRegistry | None = None) -> FastStream:
    """The service as a FastStream app: metrics and probes at start-up, `start` once the broker is up, `stop` first."""
    settings = runtime.settings
    served: list[Any] = []

    async def serve() -> None:
        server = serve_metrics(
            registry or runtime.registry, settings.metrics_port, settings.metrics_host, ready=runtime.ready
        )
        served.extend([server] if server else [])

    async def started() -> None:
        await start()
        runtime.started = True

    async def shutdown() -> None:
        runtime.started = False
        await stop()
        await runtime.close()
        for server, _thread in served:
            await asyncio.to_thread(server.shutdown)  # blocks until its loop notices (up to 0.5 s)
            server.server_close()

    return FastStream(runtime.broker, on_startup=[serve], after_startup=[started], on_shutdown=[shutdown])


W = TypeVar("W", bound=Worker)


@dataclass
class WorkerRuntime(Runtime, Generic[W]):
    """The runtime of a service whose background work is one `Worker` (tests drive `worker` directly)."""

    worker: W | None = None


def worker_app(
    settings: ServiceSettings,
    span_exporter: SpanExporter | None,
    make_worker: Callable[[Runtime], W],
    register: Callable[[W], None],
) -> tuple[FastStream, WorkerRuntime[W]]:
    """A service made of handlers and one worker: the runtime, the worker over it, its handlers, its app."""
    runtime: WorkerRuntime[W] = WorkerRuntime(**vars(create_runtime(settings, span_exporter)))
    runtime.worker = worker = make_worker(runtime)
    register(worker)
    return service_app(runtime, worker.start, worker.stop), runtime
