"""One trace covers the control path: the router's cold-start request -> scaling action -> allocation.

The scaler and the allocator run in-process on the real Kafka and PostgreSQL, each with its own
in-memory span exporter (as two processes would export to one collector); the allocator's
provisioner hands out the shared test Triton server (so provisioning loads a real model over
Triton's repository API, with the trace context in its headers). What has to hold: the scaler
continues the request's trace, its outbox keeps it, the allocator's consumer continues it, its
provisioning work (a job, not the consumer) continues it from the action's row, and the
ServerAllocated record it publishes carries the same trace on to the router.

The scaler's periodic evaluation (forecasts, then actions) writes its outbox rows inside its own
root span, `scaler.evaluate`, through the same outbox path; it is not the trigger here because an
evaluation reads every model in the shared test schema (tens of seconds with other tests' data).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from aiokafka import AIOKafkaProducer
from opentelemetry import propagate
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import create_async_engine

from services.allocator.adapters.orm import gpu, gpu_pool, gpu_price, model_requirement, server
from services.allocator.adapters.provisioner import LocalProvisioner, ServerEndpoint
from services.allocator.app import create_app as create_allocator
from services.allocator.app import migrate as migrate_allocator
from services.allocator.domain.reconciliation import ServerObserved
from services.allocator.settings import AllocatorSettings
from services.scaler.app import create_app as create_scaler
from services.scaler.app import migrate as migrate_scaler
from services.scaler.settings import ScalerSettings
from shared.events import (
    ALLOCATIONS,
    DEMAND,
    MODEL_REQUESTS,
    PRICES,
    SCALING_ACTIONS,
    SCALING_SIGNALS,
    SERVER_METRICS,
    ModelRequested,
)
from tests.integration.helpers import collect, running, start_group_at_end

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture
def region_and_model(tmp_path: Path, database_url, triton_http: str) -> Iterator[tuple[str, str, Path]]:
    """A region and model of this test's own, a fleet file naming them; their rows removed afterwards."""
    tag = uuid.uuid4().hex[:8]
    region, model = f"trace-{tag}", f"echo-trace-{tag}"
    fleet = {
        "gpu_types": {"a100_80gb": {"memory_gb": 80, "on_demand_per_hour": 4.10, "relative_speed": 0.6}},
        "regions": {region: 1.0},
        "pools": {region: {"a100_80gb": [2, 2, 0]}},
        "models": {
            model: {"min_memory_gb": 1, "preferred_gpu": "a100_80gb", "instances_per_gpu": 4, "triton_model": "echo"}
        },
    }
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(fleet))
    yield region, model, path
    asyncio.run(_forget(database_url("allocator"), region, model))


async def _forget(url: str, region: str, model: str) -> None:
    engine = create_async_engine(url)
    async with engine.begin() as connection:
        for table in (gpu, gpu_pool, gpu_price, server):
            await connection.execute(delete(table).where(table.c.region == region))
        await connection.execute(delete(model_requirement).where(model_requirement.c.model_id == model))
    await engine.dispose()


class SharedTriton(LocalProvisioner):
    """The shared test Triton server as every server started: models load over its repository API for real.

    Never stopped or emptied (other tests use it): a stop and an unload change nothing there.
    """

    def __init__(self, endpoint: str) -> None:
        super().__init__()
        self._endpoint = endpoint

    async def start_server(self, server_id: str, region: str, gpu_type: str, gpu_count: int, emulation=None):
        return ServerEndpoint(self._endpoint, f"http://{self._endpoint}/metrics")

    async def unload_model(self, endpoint: str, triton_model: str) -> None:
        return None

    async def stop_server(self, server_id: str) -> None:
        return None

    async def observe(self, prefix: str) -> dict[str, ServerObserved]:
        return {}


def in_trace(spans: tuple[ReadableSpan, ...], trace_id: int) -> list[ReadableSpan]:
    return [s for s in spans if s.context is not None and s.context.trace_id == trace_id]


def named(spans: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


async def test_a_scaling_action_and_its_allocation_are_one_trace(
    region_and_model, kafka_bootstrap: str, database_url, triton_http: str
) -> None:
    region, model, fleet = region_and_model
    tag = model.rsplit("-", 1)[1]
    scaler_settings = ScalerSettings(
        kafka_bootstrap=kafka_bootstrap, database_url=database_url("scaler"), consumer_group=f"test-trace-s-{tag}",
        fleet_config=fleet, evaluation_interval_s=3600, outbox_poll_s=0.2,
    )  # fmt: skip
    allocator_settings = AllocatorSettings(
        kafka_bootstrap=kafka_bootstrap, database_url=database_url("allocator"), consumer_group=f"test-trace-a-{tag}",
        fleet_config=fleet, server_prefix=f"trace-t{tag}", reconcile_interval_s=3600, replan_interval_s=0,
        relay_poll_interval_s=0.2,
    )  # fmt: skip
    await asyncio.to_thread(migrate_scaler, scaler_settings)
    await asyncio.to_thread(migrate_allocator, allocator_settings)
    topics = (DEMAND, ALLOCATIONS, SCALING_ACTIONS, PRICES, MODEL_REQUESTS, SERVER_METRICS, SCALING_SIGNALS)
    await start_group_at_end(kafka_bootstrap, scaler_settings.group_id, *(t.name for t in topics))
    await start_group_at_end(kafka_bootstrap, allocator_settings.group_id, *(t.name for t in topics))

    client = TracerProvider()
    client_spans, scaler_spans, allocator_spans = InMemorySpanExporter(), InMemorySpanExporter(), InMemorySpanExporter()
    client.add_span_processor(SimpleSpanProcessor(client_spans))
    scaler = create_scaler(scaler_settings, scaler_spans)[1]
    allocator = create_allocator(allocator_settings, allocator_spans, SharedTriton(triton_http))[1]
    async with running(scaler.runtime.broker), running(allocator.runtime.broker):
        await scaler.start()
        await allocator.start()
        try:
            # The router's cold-start request, as it sends it: inside its span, the context in the headers.
            asked = ModelRequested(source="test", model_id=model, region=region, pending_requests=3)
            with client.get_tracer("test").start_as_current_span("router cold start", kind=SpanKind.PRODUCER) as root:
                await produce_traced(kafka_bootstrap, MODEL_REQUESTS.name, asked.model_dump_json().encode(), model)
            records = await collect(
                kafka_bootstrap,
                ALLOCATIONS.name,
                lambda rs: _outcome(rs, model, allocator_settings.server_prefix) is not None,
                timeout=60,
            )
        finally:
            await allocator.stop()
            await scaler.stop()
    await allocator.runtime.close()
    await scaler.runtime.close()

    outcome = _outcome(records, model, allocator_settings.server_prefix)
    assert outcome is not None and json.loads(outcome.value)["type"] == "server_allocated", outcome.value
    action_id = json.loads(outcome.value)["action_id"]
    trace_id = root.get_span_context().trace_id
    scaler_side = in_trace(scaler_spans.get_finished_spans(), trace_id)
    allocator_side = in_trace(allocator_spans.get_finished_spans(), trace_id)

    # The scaler consumed the request in the trace and its action went out through the outbox in it.
    assert named(scaler_side, f"{MODEL_REQUESTS.name} process")
    assert named(scaler_side, f"{SCALING_ACTIONS.name} publish")
    # The allocator consumed the action in that trace, as the child of the scaler's producer span.
    consumed = named(allocator_side, f"{SCALING_ACTIONS.name} process")
    producer_ids = {s.context.span_id for s in scaler_side if s.kind is SpanKind.PRODUCER}
    assert consumed and all(c.parent is not None and c.parent.span_id in producer_ids for c in consumed)
    # The provisioning worker (a job, not the consumer) carried the action out in the same trace.
    work = [s for s in named(allocator_side, "allocator.carry_out") if s.attributes["llmfleet.action_id"] == action_id]
    assert len(work) == 1
    steps = [s for s in named(allocator_side, "allocator.provisioner") if s.parent.span_id == work[0].context.span_id]
    assert {str(s.attributes["llmfleet.step"]).split()[0] for s in steps} >= {"starting", "loading"}
    # SQL statements inside the trace are spans (the SQLAlchemy instrumentation) ...
    statements = [s for s in allocator_side if s.kind is SpanKind.CLIENT and "db.system" in (s.attributes or {})]
    assert any(s.parent.span_id == work[0].context.span_id for s in statements)
    # ... and the allocation event went out in the trace, its record carrying it on to the router.
    assert named(allocator_side, f"{ALLOCATIONS.name} publish")
    traceparent = dict(outcome.headers)["traceparent"].decode()
    assert traceparent.split("-")[1] == format(trace_id, "032x")


async def produce_traced(bootstrap: str, topic: str, value: bytes, key: str) -> None:
    """Send one record with the current trace context in its headers."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        headers = [(k, v.encode()) for k, v in carrier.items()]
        await producer.send_and_wait(topic, value, key=key.encode(), headers=headers)
    finally:
        await producer.stop()


def _outcome(records: list, model: str, prefix: str):
    """The first ServerAllocated (a server named with our prefix) or AllocationFailed (for our model), or None."""
    for record in records:
        event = json.loads(record.value)
        ours = event.get("model_id") == model or str(event.get("server_id", "")).startswith(prefix)
        if ours and event.get("type") in ("server_allocated", "allocation_failed"):
            return record
    return None
