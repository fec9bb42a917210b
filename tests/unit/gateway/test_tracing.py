"""The call's trace goes on with the request record: the router continues it from the traceparent header."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.gateway.adapters.bridge import Bridge


def test_a_request_record_carries_the_calls_trace() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    bridge = Bridge("127.0.0.1:1", "inference.requests.v1", "inference.replies.gateway-t", 1, tracer)
    assert bridge._trace_headers() is None  # no call span: nothing to continue
    with tracer.start_as_current_span("POST /v1/completions") as call:
        headers = dict(bridge._trace_headers() or [])
    trace_id = f"{call.get_span_context().trace_id:032x}"
    assert headers["traceparent"].decode().split("-")[1] == trace_id
    names = [s.name for s in exporter.get_finished_spans()]
    assert names == ["inference.requests.v1 publish", "POST /v1/completions"]
