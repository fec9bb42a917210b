"""One trace per request: producer span -> router consume -> batch -> Triton call -> Triton's spans; result publish."""

from __future__ import annotations

import http.server
import json
import threading
import uuid
from collections.abc import Iterator

import pytest
from aiokafka import AIOKafkaProducer
from opentelemetry import propagate
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from deploy.local import triton
from services.router.settings import StaticServer
from tests.integration.helpers import wait_for
from tests.integration.router.conftest import Topic, request, results_for, router_app, static

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


async def test_a_request_ends_in_one_trace_from_producer_to_result(make_settings, router_tritons, kafka_bootstrap):
    settings = make_settings(static_servers=static(router_tritons))
    client_spans = InMemorySpanExporter()
    client_provider = TracerProvider()
    client_provider.add_span_processor(SimpleSpanProcessor(client_spans))
    router_spans = InMemorySpanExporter()
    asked = request("echo", f"trace-{uuid.uuid4().hex[:6]}", max_tokens=5)
    async with Topic(kafka_bootstrap) as results, router_app(settings, span_exporter=router_spans):
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        await producer.start()
        with client_provider.get_tracer("test").start_as_current_span("client send", kind=SpanKind.PRODUCER) as sent:
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            headers = [(k, v.encode()) for k, v in carrier.items()]
            await producer.send_and_wait(
                settings.requests_topic, asked.model_dump_json().encode(), key=b"t", headers=headers
            )
        await producer.stop()
        values = await results.until(lambda vs: len(results_for(vs, {asked.request_id})) >= 1)
    assert results_for(values, {asked.request_id})[0]["status"] == "ok"
    assert "traceparent" in carrier
    trace_id = sent.get_span_context().trace_id
    spans = [s for s in router_spans.get_finished_spans() if s.context.trace_id == trace_id]
    by_name = {s.name: s for s in spans}
    consume = by_name[f"{settings.requests_topic} process"]
    batch = by_name["router.batch"]
    call = by_name["triton infer echo"]
    publish = by_name["inference.results.v1 publish"]
    # Parent chain: producer <- consume <- batch <- Triton call; consume <- result publish.
    assert consume.parent.span_id == sent.get_span_context().span_id
    assert batch.parent.span_id == consume.context.span_id
    assert call.parent.span_id == batch.context.span_id and call.kind is SpanKind.CLIENT
    assert publish.parent.span_id == consume.context.span_id and publish.kind is SpanKind.PRODUCER
    assert consume.attributes["llmfleet.request_id"] == asked.request_id


class OtlpJsonCollector:
    """A minimal OTLP/HTTP trace receiver on 127.0.0.1 (Triton exports OTLP as JSON), keeping every span."""

    def __init__(self) -> None:
        self.spans: list[dict] = []
        collector = self

        class Receive(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                for resource in json.loads(body).get("resourceSpans", []):
                    for scope in resource.get("scopeSpans", []):
                        collector.spans.extend(scope.get("spans", []))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receive)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def traced_triton(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, OtlpJsonCollector]]:
    """A Triton server of this test's own exporting its spans to a collector here (the stack's options)."""
    collector = OtlpJsonCollector()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url)  # what the local stack reads
    name = f"router-traced-{uuid.uuid4().hex[:6]}"
    info = triton.start_server(name, triton.PROFILES["h100_80gb"], models=["echo"], region="us-east-1", base_port=8600)
    try:
        yield str(info["http_url"]), collector
    finally:
        triton.stop_server(name)
        collector.close()


async def test_tritons_own_spans_continue_the_routers_triton_call(make_settings, traced_triton, kafka_bootstrap):
    address, collector = traced_triton
    server = StaticServer(
        server_id="router-traced", endpoint=address, region="us-east-1", gpu_type="h100_80gb",
        cost_per_hour=2.0, capacity=4, models={"echo": "echo"},
    )  # fmt: skip
    settings = make_settings(static_servers=[server])
    router_spans = InMemorySpanExporter()
    asked = request("echo", f"triton-trace-{uuid.uuid4().hex[:6]}", max_tokens=3)
    client = TracerProvider()
    async with Topic(kafka_bootstrap) as results, router_app(settings, span_exporter=router_spans):
        with client.get_tracer("test").start_as_current_span("client send", kind=SpanKind.PRODUCER) as sent:
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
            await producer.start()
            headers = [(k, v.encode()) for k, v in carrier.items()]
            await producer.send_and_wait(settings.requests_topic, asked.model_dump_json().encode(), headers=headers)
            await producer.stop()
        values = await results.until(lambda vs: len(results_for(vs, {asked.request_id})) >= 1)
    assert results_for(values, {asked.request_id})[0]["status"] == "ok"
    call = next(s for s in router_spans.get_finished_spans() if s.name == "triton infer echo")
    assert call.context.trace_id == sent.get_span_context().trace_id
    trace_id, call_id = format(call.context.trace_id, "032x"), format(call.context.span_id, "016x")

    def triton_request() -> dict | None:
        return next((s for s in collector.spans if s.get("traceId") == trace_id and s["name"] == "InferRequest"), None)

    # Triton exports in batches: its request span comes within a few seconds of the call.
    assert await wait_for(triton_request, timeout=20)
    # Triton's request span is the child of the router's call; its model and compute spans hang below it.
    inside = triton_request()
    assert inside is not None and inside["parentSpanId"] == call_id
    below = [s for s in collector.spans if s.get("traceId") == trace_id and s["spanId"] != inside["spanId"]]
    assert {s["name"] for s in below} >= {"echo", "compute"}
