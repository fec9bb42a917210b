"""One trace per request: producer span -> router consume -> batch -> Triton call -> result publish."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaProducer
from opentelemetry import propagate
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

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
