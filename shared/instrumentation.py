"""OpenTelemetry's SQLAlchemy and aiohttp-client instrumentations, per service and only inside a trace.

Both are wired per engine / per HTTP session with the service's own tracer provider, not through
the instrumentors' global `instrument()`: that patches the process once, with one provider, and
several services share a process in the integration tests (and would in a single-process demo).

Both record a span only when there is already a trace to join. A service's background rounds
poll the database without one (the outbox relay every 0.5 s, the leader lock, retention, the
monitor's scrapes): recorded, each statement would start a one-span trace of its own, thousands
an hour per replica, burying the traces that matter. Inside a handler or a traced round (a
scaler cycle, an allocator provisioning) every statement and HTTP call is a child span.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.metrics import NoOpMeterProvider
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.telemetry import sdk_disabled


class InTraceOnlyTracer(trace.Tracer):
    """A tracer that starts a span only as the child of a valid span; otherwise a non-recording one."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer

    def start_span(self, name: str, context: Context | None = None, *args: Any, **kwargs: Any) -> trace.Span:
        """The real tracer's span when a parent is current (or given); INVALID_SPAN otherwise."""
        if not trace.get_current_span(context).get_span_context().is_valid:
            return trace.INVALID_SPAN
        return self._tracer.start_span(name, context, *args, **kwargs)

    @contextmanager
    def start_as_current_span(  # type: ignore[override]  # the SDK's own decorator is private
        self, name: str, context: Context | None = None, *args: Any, end_on_exit: bool = True, **kwargs: Any
    ) -> Iterator[trace.Span]:
        """`start_span`, made current for the block."""
        span = self.start_span(name, context, *args, **kwargs)
        with trace.use_span(span, end_on_exit=end_on_exit):
            yield span


class InTraceOnlyTracerProvider(trace.TracerProvider):
    """Hands out `InTraceOnlyTracer`s over the service's provider (for the instrumentations)."""

    def __init__(self, provider: trace.TracerProvider) -> None:
        self._provider = provider

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: Any = None,
    ) -> trace.Tracer:
        """The provider's tracer, wrapped."""
        version = instrumenting_library_version
        return InTraceOnlyTracer(self._provider.get_tracer(instrumenting_module_name, version, schema_url, attributes))


def instrument_engine(engine: AsyncEngine, provider: trace.TracerProvider) -> object | None:
    """A span per SQL statement run inside a trace (`db.system`, statement, server); None when the SDK is off.

    The instrumentation's `EngineTracer` listens on this engine's cursor events only; no
    `connect` spans (every pool checkout would be one), no sqlcommenter (it defeats Postgres's
    statement cache), and no connection-usage metric (the service's /metrics has its own).
    """
    if sdk_disabled():
        return None
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
    from opentelemetry.instrumentation.sqlalchemy.version import __version__

    tracer = InTraceOnlyTracerProvider(provider).get_tracer("opentelemetry.instrumentation.sqlalchemy", __version__)
    usage = NoOpMeterProvider().get_meter("llmfleet").create_up_down_counter("db.client.connections.usage")
    return EngineTracer(tracer, engine.sync_engine, usage)  # type: ignore[no-untyped-call]


def http_trace_configs(provider: trace.TracerProvider) -> list[aiohttp.TraceConfig]:
    """`trace_configs=` for an aiohttp session: a CLIENT span per request inside a trace, traceparent sent."""
    if sdk_disabled():
        return []
    from opentelemetry.instrumentation.aiohttp_client import create_trace_config

    return [create_trace_config(tracer_provider=InTraceOnlyTracerProvider(provider))]
