"""Every service's runtime and runner, built once: the I/O it holds, the service over it, the app that runs it.

`create_runtime(settings)` makes the I/O a service holds (tracing, broker, database, metrics
registry). Each service subclasses `ServiceApp` in its `jobs.py`: its settings, metrics, outbox
relay and own dependencies, and what its jobs are (`rounds()`, `retained()`, `prepare()`); its
`handlers.register(app)` subscribes through `app.subscribe(topic, handler)`.
`create_service(...)` is the body of every `create_app`: the runtime, the service assembled over
it, `handlers.register(app)`, and the FastStream application that `shared.main` runs: metrics
and probes served at start-up, the jobs started once the broker is up, everything stopped and
released on SIGTERM.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from faststream import FastStream
from faststream.kafka import KafkaBroker
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter
from prometheus_client import CollectorRegistry
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.broker import create_broker
from shared.db import create_engine, session_factory
from shared.delivery import DeliveryLedger, SqlDeliveryLedger, find_delivery_attempt_table
from shared.events import Event, Topic
from shared.jobs import Job, Jobs, OnFailure, exit_loudly, loop
from shared.metrics import new_registry, serve_metrics
from shared.outbox import OutboxRelay
from shared.retention import Kept, retention_job
from shared.settings import ServiceSettings
from shared.subscribe import DeliveryMetrics, Handler, subscribe

S = TypeVar("S", bound=ServiceSettings)
M = TypeVar("M")
E = TypeVar("E", bound=Event)


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

    def http_trace_configs(self) -> list[Any]:
        """`trace_configs=` for the service's own aiohttp sessions: a client span per call made inside a trace.

        Per session, not patched into aiohttp: the router's Triton calls (tritonclient's own
        session) keep their one `triton infer` span per batch instead of two.
        """
        from shared.instrumentation import http_trace_configs

        return list(http_trace_configs(self.tracer_provider))

    async def close(self) -> None:
        """Release the database pool and flush spans."""
        await self.engine.dispose()
        self.tracer_provider.force_flush()


def create_runtime(settings: ServiceSettings, span_exporter: SpanExporter | None = None) -> Runtime:
    """Build the service's tracer provider, Kafka broker and database engine from settings."""
    from shared.instrumentation import instrument_engine
    from shared.telemetry import create_tracer_provider

    provider = create_tracer_provider(settings.service_name, span_exporter)
    engine = create_engine(settings.database_url, settings.db_schema, settings.db_pool_size)
    instrument_engine(engine, provider)  # a span per statement, inside traces only (shared.instrumentation)
    return Runtime(
        settings=settings,
        tracer_provider=provider,
        broker=create_broker(
            settings.kafka_bootstrap, f"llmfleet-{settings.service_name}", provider, settings.kafka_security
        ),
        engine=engine,
        sessions=session_factory(engine),
    )


class ServiceApp(Generic[S, M]):
    """A service assembled over its runtime: settings, metrics, outbox relay; `register(app)` and the jobs use it.

    Every service runs the same jobs: its outbox relay, its periodic `rounds()`, and retention of
    what `retained()` declares. A subclass adds its own dependencies in `__init__`.
    """

    def __init__(
        self,
        runtime: Runtime,
        settings: S,
        metrics: M,
        outbox: Table,
        relay_poll_s: float = 0.5,
        on_failure: OnFailure = exit_loudly,
    ) -> None:
        self.runtime = runtime
        self.settings = settings
        self.metrics = metrics
        self.relay = OutboxRelay(runtime.sessions, outbox, runtime.broker)
        self.relay_poll_s = relay_poll_s
        self.background = Jobs(on_failure)
        # The service's `delivery_attempt` table sits beside its outbox in `adapters/orm.py`.
        self._delivery_attempts = find_delivery_attempt_table(outbox.metadata)
        self._delivery_metrics: DeliveryMetrics | None = None

    def delivery_ledger(self) -> DeliveryLedger:
        """Where this service's subscribers count deliveries across restarts: its `delivery_attempt` table.

        A service that subscribes must declare the table (`delivery_attempt_table(metadata)` in
        its `adapters/orm.py`, and a migration): without it a record that crashes the process
        would be retried forever, so this fails at start-up instead.
        """
        if self._delivery_attempts is None:
            raise LookupError(
                f"{self.settings.service_name} subscribes but declares no delivery_attempt table: "
                "add `delivery_attempt_table(metadata)` to its adapters/orm.py and a migration"
            )
        return SqlDeliveryLedger(self.runtime.sessions, self._delivery_attempts)

    def subscribe(self, topic: Topic[E], handler: Handler[E], inbox: str | None = None) -> str:
        """Subscribe `handler` to `topic` as this service (its group, its name on dead letters); its inbox name.

        Deliveries are counted in the service's `delivery_attempt` table, parked records and lost
        dead letters on its `/metrics`.
        """
        settings = self.settings
        if self._delivery_metrics is None:  # once per registry: a metric can be registered only once
            self._delivery_metrics = DeliveryMetrics(self.runtime.registry, settings.service_name)
        return subscribe(
            self.runtime.broker,
            topic,
            settings.group_id,
            handler,
            settings.service_name,
            inbox=inbox,
            ledger=self.delivery_ledger(),
            metrics=self._delivery_metrics,
        )

    def rounds(self) -> Sequence[Job]:
        """The service's periodic rounds (evaluation, cycle, scrape...); none by default."""
        return ()

    def retained(self) -> Sequence[Kept]:
        """What retention prunes; nothing by default."""
        return ()

    def pruned(self) -> tuple[Kept, ...]:
        """What retention prunes: `retained()`, and the delivery counts a crash left behind.

        Rows of `delivery_attempt` are deleted once their record is done; the rest go after
        `inbox_retention_s`. Added here, not in each `retained()`, so a service that declares the
        table cannot forget to prune it.
        """
        kept = tuple(self.retained())
        if self._delivery_attempts is not None:
            kept += (Kept(self._delivery_attempts, "updated_at", self.settings.inbox_retention_s),)
        return kept

    def retention(self) -> Job:
        """The retention job over `pruned()`, every `retention_interval_s` on one replica."""
        return retention_job(self.runtime.sessions, self.settings, self.pruned())

    def jobs(self) -> Sequence[Job]:
        """The outbox relay, the service's rounds, then retention."""
        relay = self.relay
        relayed = loop(f"{self.settings.service_name} outbox relay", lambda: relay.run(self.relay_poll_s))
        return (relayed, *self.rounds(), self.retention())

    async def prepare(self) -> None:
        """What runs once before the jobs start (the broker is up by then)."""

    async def release(self) -> None:
        """Close what the service holds beyond the runtime (an HTTP pool); the runtime is closed after."""

    async def start(self) -> None:
        """Prepare, then start every job under supervision."""
        await self.prepare()
        self.background.start(*self.jobs())

    async def stop(self) -> None:
        """Stop every job (a round in progress finishes first), then release the service's own resources."""
        await self.background.stop()
        await self.release()


def service_app(app: ServiceApp[Any, Any]) -> FastStream:
    """The service as a FastStream app: metrics and probes at start-up, its jobs once the broker is up."""
    runtime, settings = app.runtime, app.settings
    served: list[Any] = []

    async def serve() -> None:
        server = serve_metrics(runtime.registry, settings.metrics_port, settings.metrics_host, ready=runtime.ready)
        served.extend([server] if server else [])

    async def started() -> None:
        await app.start()
        runtime.started = True

    async def shutdown() -> None:
        runtime.started = False
        await app.stop()
        await runtime.close()
        for server, _thread in served:
            await asyncio.to_thread(server.shutdown)  # blocks until its loop notices (up to 0.5 s)
            server.server_close()

    return FastStream(runtime.broker, on_startup=[serve], after_startup=[started], on_shutdown=[shutdown])


A = TypeVar("A", bound=ServiceApp[Any, Any])


def create_service(
    settings: S,
    span_exporter: SpanExporter | None,
    assemble: Callable[[Runtime, S], A],
    register: Callable[[A], None],
) -> tuple[FastStream, A]:
    """Every service's `create_app`: the runtime, the service assembled over it, its handlers, its FastStream app."""
    app = assemble(create_runtime(settings, span_exporter), settings)
    register(app)
    return service_app(app), app
