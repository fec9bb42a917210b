"""The SQLAlchemy and aiohttp instrumentations record spans inside a trace only, on the service's provider."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import event
from sqlalchemy.ext.asyncio import create_async_engine

from shared.instrumentation import InTraceOnlyTracerProvider, http_trace_configs, instrument_engine


@pytest.fixture
def recorded() -> tuple[TracerProvider, InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return provider, memory


def test_no_span_is_started_outside_a_trace(recorded) -> None:
    provider, memory = recorded
    tracer = InTraceOnlyTracerProvider(provider).get_tracer("test")
    span = tracer.start_span("SELECT")
    assert span is trace.INVALID_SPAN and not span.is_recording()
    with tracer.start_as_current_span("SELECT") as current:
        assert not current.is_recording()
    assert memory.get_finished_spans() == ()


def test_inside_a_trace_spans_are_children_of_the_current_span(recorded) -> None:
    provider, memory = recorded
    tracer = InTraceOnlyTracerProvider(provider).get_tracer("test")
    with provider.get_tracer("app").start_as_current_span("handler") as parent:
        tracer.start_span("SELECT").end()
        with tracer.start_as_current_span("INSERT"):
            pass
    spans = {s.name: s for s in memory.get_finished_spans()}
    assert spans["SELECT"].parent.span_id == parent.get_span_context().span_id
    assert spans["INSERT"].parent.span_id == parent.get_span_context().span_id


def test_the_engine_gets_the_cursor_listeners(recorded) -> None:
    provider, _ = recorded
    engine = create_async_engine("postgresql+asyncpg://u:p@127.0.0.1:1/db")
    assert instrument_engine(engine, provider) is not None
    assert event.contains(engine.sync_engine, "before_cursor_execute", _listener(engine, "before_cursor_execute"))


def test_the_sdk_switch_leaves_engines_and_sessions_uninstrumented(recorded, monkeypatch) -> None:
    provider, _ = recorded
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    engine = create_async_engine("postgresql+asyncpg://u:p@127.0.0.1:1/db")
    assert instrument_engine(engine, provider) is None
    assert not engine.sync_engine.dispatch.before_cursor_execute
    assert http_trace_configs(provider) == []


def test_an_http_session_gets_one_trace_config(recorded, monkeypatch) -> None:
    provider, _ = recorded
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
    (config,) = http_trace_configs(provider)
    assert config.on_request_start  # the hooks that start and end the client span


def _listener(engine, name: str):
    (listener,) = [fn for fn in getattr(engine.sync_engine.dispatch, name)]
    return listener
