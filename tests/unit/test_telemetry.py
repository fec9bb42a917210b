"""Tracing follows OpenTelemetry's standard environment variables, with the project's fallbacks."""

from __future__ import annotations

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import ConsoleSpanExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.telemetry import create_tracer_provider, current_traceparent, inject_trace_headers

OTEL_VARIABLES = (
    "OTEL_SDK_DISABLED",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_TRACES_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sets what it needs; nothing from the shell leaks in."""
    for name in OTEL_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def exporters(provider) -> list:
    processors = provider._active_span_processor._span_processors
    return [processor.span_exporter for processor in processors]


def test_nothing_is_exported_without_an_endpoint_or_an_exporter_named():
    assert exporters(create_tracer_provider("router")) == []


def test_otlp_over_http_is_used_when_the_endpoint_is_set(monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    provider = create_tracer_provider("router")
    assert [type(e) for e in exporters(provider)] == [OTLPSpanExporter]
    assert provider.resource.attributes["service.name"] == "llmfleet-router"
    provider.shutdown()


def test_a_traces_endpoint_alone_also_turns_otlp_on(monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:4318/v1/traces")
    provider = create_tracer_provider("router")
    assert [type(e) for e in exporters(provider)] == [OTLPSpanExporter]
    provider.shutdown()


@pytest.mark.parametrize(
    ("variable", "protocol", "expected"),
    [
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", GrpcExporter),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc", GrpcExporter),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf", OTLPSpanExporter),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json", OTLPSpanExporter),  # no Python exporter: warned, HTTP
    ],
)
def test_the_otlp_protocol_chooses_grpc_or_http(monkeypatch, variable, protocol, expected):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
    monkeypatch.setenv(variable, protocol)
    provider = create_tracer_provider("scaler")
    assert [type(e) for e in exporters(provider)] == [expected]
    provider.shutdown()


def test_the_traces_protocol_wins_over_the_general_one(monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc")
    provider = create_tracer_provider("scaler")
    assert [type(e) for e in exporters(provider)] == [GrpcExporter]
    provider.shutdown()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("console", [ConsoleSpanExporter]),
        ("otlp,console", [OTLPSpanExporter, ConsoleSpanExporter]),
        ("none", []),
        ("otlp, none", []),  # none wins, as the specification says
        ("zipkin,console", [ConsoleSpanExporter]),  # unsupported names are warned about and skipped
        ("otlp", [OTLPSpanExporter]),  # named: exported even without an endpoint (the SDK's default address)
    ],
)
def test_otel_traces_exporter_chooses_the_exporters(monkeypatch, value, expected):
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", value)
    provider = create_tracer_provider("cost")
    assert [type(e) for e in exporters(provider)] == expected
    provider.shutdown()


def test_otel_traces_exporter_none_wins_over_the_endpoint(monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert exporters(create_tracer_provider("cost")) == []


def test_sdk_disabled_gives_no_op_tracing_and_no_exporter(monkeypatch):
    monkeypatch.setenv("OTEL_SDK_DISABLED", "TRUE")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    provider = create_tracer_provider("router", InMemorySpanExporter())
    assert exporters(provider) == []
    with provider.get_tracer("test").start_as_current_span("dispatch") as span:
        assert not span.is_recording()
        assert current_traceparent() is None  # nothing to propagate either


def test_otel_service_name_wins_over_the_default(monkeypatch):
    monkeypatch.setenv("OTEL_SERVICE_NAME", "router-eu-west")
    assert create_tracer_provider("router").resource.attributes["service.name"] == "router-eu-west"


def test_a_service_name_in_the_resource_attributes_wins_too(monkeypatch):
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=fleet-router,deployment.environment=staging")
    attributes = create_tracer_provider("router").resource.attributes
    assert attributes["service.name"] == "fleet-router"
    assert attributes["deployment.environment"] == "staging"


def test_resource_attributes_without_a_name_keep_the_default(monkeypatch):
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=staging")
    attributes = create_tracer_provider("router").resource.attributes
    assert attributes["service.name"] == "llmfleet-router"
    assert attributes["deployment.environment"] == "staging"


def test_a_given_exporter_wins_and_spans_carry_their_context_into_headers(monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    memory = InMemorySpanExporter()
    provider = create_tracer_provider("router", memory)
    assert exporters(provider) == [memory]
    with provider.get_tracer("test").start_as_current_span("dispatch") as span:
        headers = inject_trace_headers({"content-type": "application/json"})
        traceparent = current_traceparent()
    trace_id = format(span.get_span_context().trace_id, "032x")
    assert headers["traceparent"].split("-")[1] == trace_id
    assert traceparent == headers["traceparent"]
    assert headers["content-type"] == "application/json"
    assert [s.name for s in memory.get_finished_spans()] == ["dispatch"]
    assert current_traceparent() is None  # outside any span


def test_the_standard_sampler_variables_choose_sampling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.25")
    description = create_tracer_provider("sampled").sampler.get_description()
    assert description.startswith("ParentBased{root:TraceIdRatioBased{0.25}")
