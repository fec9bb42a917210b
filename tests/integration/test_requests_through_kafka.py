"""Requests go through real Kafka to a real Triton and back, one result each, traced end to end."""

from __future__ import annotations

import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from deploy.local.triton import load_model
from llmfleet.client import FleetClient
from shared.broker import create_broker
from shared.events import INFERENCE_REQUESTS
from shared.telemetry import create_tracer_provider
from tests.integration.helpers import running, start_group_at_end
from tests.support.passthrough import register_passthrough

pytestmark = pytest.mark.integration


@pytest.fixture
def tinylm(triton_http: str) -> str:
    load_model(triton_http, "tinylm")
    return triton_http


async def make_topic(bootstrap: str) -> str:
    name = f"test.replies.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(name, num_partitions=2, replication_factor=1)])
    await admin.close()
    return name


async def test_each_request_gets_one_result_with_its_tokens_and_one_trace(kafka_bootstrap, tinylm):
    server_spans = InMemorySpanExporter()
    broker = create_broker(kafka_bootstrap, "test-passthrough", create_tracer_provider("test", server_spans))
    group = f"test-{uuid.uuid4().hex[:8]}"
    await start_group_at_end(kafka_bootstrap, group, INFERENCE_REQUESTS.name)
    clients = register_passthrough(broker, [("server-0", tinylm)], group_id=group)
    client_spans = InMemorySpanExporter()
    client_provider = TracerProvider()
    client_provider.add_span_processor(SimpleSpanProcessor(client_spans))
    tracer = client_provider.get_tracer("test-client")
    reply_topic = await make_topic(kafka_bootstrap)
    wanted = {f"req-{uuid.uuid4().hex[:6]}-{i}": 3 + 5 * i for i in range(5)}

    async with running(broker), FleetClient(kafka_bootstrap, reply_topic=reply_topic) as fleet:
        with tracer.start_as_current_span("client.send") as root:
            for request_id, max_tokens in wanted.items():
                await fleet.send(
                    "tinylm", f"prompt {request_id}", request_id, max_tokens=max_tokens, reply_topic=reply_topic
                )
        results = await fleet.collect(wanted, timeout=60)
    for client in clients:
        await client.close()

    assert set(results) == set(wanted)
    for request_id, result in results.items():
        assert result.status == "ok", result.reason
        assert result.tokens_out == wanted[request_id] == len(result.text)
        assert result.server_id == "server-0"
        assert result.timings.inference_ms > 0
    trace_id = root.get_span_context().trace_id
    consumed = [s for s in server_spans.get_finished_spans() if s.kind.name == "CONSUMER"]
    published = [s for s in server_spans.get_finished_spans() if s.kind.name == "PRODUCER"]
    assert len([s for s in consumed if s.context.trace_id == trace_id]) >= len(wanted)
    assert len([s for s in published if s.context.trace_id == trace_id]) >= len(wanted)


async def test_a_model_the_server_does_not_have_fails_with_a_reason(kafka_bootstrap, tinylm):
    broker = create_broker(kafka_bootstrap, "test-passthrough", create_tracer_provider("test"))
    group = f"test-{uuid.uuid4().hex[:8]}"
    await start_group_at_end(kafka_bootstrap, group, INFERENCE_REQUESTS.name)
    clients = register_passthrough(broker, [("server-0", tinylm)], group_id=group)
    async with running(broker), FleetClient(kafka_bootstrap) as fleet:
        result = await fleet.complete("no-such-model", "hello", max_tokens=4, timeout=60)
    for client in clients:
        await client.close()
    assert result.status == "failed"
    assert "no-such-model" in (result.reason or "")
