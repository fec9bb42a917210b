"""Tracing exports over OTLP only when asked, and trace context goes into headers."""

from __future__ import annotations

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.telemetry import create_tracer_provider, inject_trace_headers


def exporters(provider) -> list:
    processors = provider._active_span_processor._span_processors
    return [processor.span_exporter for processor in processors]


def test_nothing_is_exported_without_an_endpoint(monkeypatch):
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    assert exporters(create_tracer_provider("router")) == []


def test_otlp_is_used_when_the_endpoint_is_set(monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    provider = create_tracer_provider("router")
    assert [type(e) for e in exporters(provider)] == [OTLPSpanExporter]
    assert provider.resource.attributes["service.name"] == "llmfleet-router"
    provider.shutdown()


def test_a_given_exporter_wins_and_spans_carry_their_context_into_headers(monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    memory = InMemorySpanExporter()
    provider = create_tracer_provider("router", memory)
    assert exporters(provider) == [memory]
    with provider.get_tracer("test").start_as_current_span("dispatch") as span:
        headers = inject_trace_headers({"content-type": "application/json"})
    trace_id = format(span.get_span_context().trace_id, "032x")
    assert headers["traceparent"].split("-")[1] == trace_id
    assert headers["content-type"] == "application/json"
    assert [s.name for s in memory.get_finished_spans()] == ["dispatch"]


def test_the_standard_sampler_variables_choose_sampling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.25")
    description = create_tracer_provider("sampled").sampler.get_description()
    assert description.startswith("ParentBased{root:TraceIdRatioBased{0.25}")
