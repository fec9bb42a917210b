"""OpenTelemetry set-up by the standard environment variables, with the project's fallbacks.

Precedence, highest first (docs/observability.md has the table):
- `OTEL_SDK_DISABLED=true`: the SDK's own switch; the provider hands out no-op tracers and
  nothing is exported or instrumented.
- an exporter passed in code (tests' in-memory exporter) wins over the environment.
- `OTEL_TRACES_EXPORTER` (comma-separated `otlp`, `console`, `none`) chooses the exporters.
  Unset, the project's fallback applies: `otlp` when an OTLP endpoint is set
  (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT`), else none, so a
  service without a collector does not log failed exports forever.
- `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, then `OTEL_EXPORTER_OTLP_PROTOCOL`: `grpc` or
  `http/protobuf` (the default, as the specification says). Endpoint, headers, timeout and
  the batch processor's `OTEL_BSP_*` are read by the SDK's own exporters and processor.
- `OTEL_SERVICE_NAME` (or `service.name` in `OTEL_RESOURCE_ATTRIBUTES`) wins over the default
  `llmfleet-<service>`; `OTEL_TRACES_SAMPLER(_ARG)` choose sampling (the SDK reads them).
"""

from __future__ import annotations

import logging
import os

from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import SERVICE_NAME, OTELResourceDetector, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor, SpanExporter

log = logging.getLogger(__name__)

EXPORTERS = ("otlp", "console", "none")
PROTOCOLS = ("grpc", "http/protobuf")


def sdk_disabled() -> bool:
    """`OTEL_SDK_DISABLED=true` (case-insensitive), as the SDK's own TracerProvider reads it."""
    return os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"


def exporter_names() -> list[str]:
    """The trace exporters asked for: `OTEL_TRACES_EXPORTER`, else `otlp` only when an endpoint is set."""
    raw = os.environ.get("OTEL_TRACES_EXPORTER")
    if raw is None or not raw.strip():
        endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        return ["otlp"] if endpoint else []
    names = [name.strip().lower() for name in raw.split(",") if name.strip()]
    if "none" in names:
        return []
    unknown = [name for name in names if name not in EXPORTERS]
    if unknown:
        log.warning("OTEL_TRACES_EXPORTER: %s not supported here (only %s); ignored", unknown, ", ".join(EXPORTERS))
    return [name for name in dict.fromkeys(names) if name in EXPORTERS]


def otlp_protocol() -> str:
    """`OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, then `OTEL_EXPORTER_OTLP_PROTOCOL`; `http/protobuf` by default."""
    raw = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
    protocol = (raw or "http/protobuf").strip().lower()
    if protocol not in PROTOCOLS:
        # http/json has no Python exporter: say so rather than export nothing silently.
        log.warning("OTLP protocol %r not supported (only %s); using http/protobuf", protocol, ", ".join(PROTOCOLS))
        return "http/protobuf"
    return protocol


def otlp_exporter(protocol: str) -> SpanExporter:
    """The SDK's OTLP span exporter for `protocol`; it reads endpoint, headers and timeout from the environment."""
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        return GrpcExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

    return HttpExporter()


def configured_exporters() -> list[SpanExporter]:
    """The exporters the environment asks for (none when the SDK is disabled)."""
    if sdk_disabled():
        return []
    made: list[SpanExporter] = []
    for name in exporter_names():
        made.append(otlp_exporter(otlp_protocol()) if name == "otlp" else ConsoleSpanExporter())
    return made


def service_resource(service_name: str) -> Resource:
    """The resource: `llmfleet-<service>` unless `OTEL_SERVICE_NAME` / `OTEL_RESOURCE_ATTRIBUTES` name the service."""
    from_env = OTELResourceDetector().detect().attributes.get(SERVICE_NAME)
    return Resource.create({} if from_env else {SERVICE_NAME: f"llmfleet-{service_name}"})


def create_tracer_provider(service_name: str, exporter: SpanExporter | None = None) -> TracerProvider:
    """A tracer provider for one service; `exporter` (tests) wins over the environment's exporters.

    With `OTEL_SDK_DISABLED=true` the SDK's provider itself hands out no-op tracers; no exporter
    is attached either, so no export thread runs.
    """
    provider = TracerProvider(resource=service_resource(service_name))
    if sdk_disabled():
        return provider
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        return provider
    for made in configured_exporters():
        provider.add_span_processor(BatchSpanProcessor(made))
    return provider


def inject_trace_headers(headers: dict[str, str] | None = None) -> dict[str, str]:
    """The current span's W3C trace context as headers (for Kafka records and Triton calls)."""
    carrier: dict[str, str] = dict(headers or {})
    propagate.inject(carrier)
    return carrier


def current_traceparent() -> str | None:
    """The current span's W3C `traceparent`, or None outside a (valid) trace."""
    return inject_trace_headers().get("traceparent")


def tracer(provider: TracerProvider, name: str) -> trace.Tracer:
    """A tracer from the service's own provider (never the global one at import time)."""
    return provider.get_tracer(name)
