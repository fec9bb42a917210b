"""OpenTelemetry set-up: OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set, nothing exported otherwise."""

from __future__ import annotations

import os

from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter


def create_tracer_provider(service_name: str, exporter: SpanExporter | None = None) -> TracerProvider:
    """A tracer provider for one service; `exporter` (tests) wins over the OTLP environment."""
    provider = TracerProvider(resource=Resource.create({"service.name": f"llmfleet-{service_name}"}))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    elif os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


def inject_trace_headers(headers: dict[str, str] | None = None) -> dict[str, str]:
    """The current span's W3C trace context as headers (for Kafka records and Triton calls)."""
    carrier: dict[str, str] = dict(headers or {})
    propagate.inject(carrier)
    return carrier


def tracer(provider: TracerProvider, name: str) -> trace.Tracer:
    """A tracer from the service's own provider (never the global one at import time)."""
    return provider.get_tracer(name)
