"""An evaluation round is one trace: its forecasts and scaling actions leave through the outbox in it.

With `tests/integration/test_trace_control_path.py` (a scaling action -> the allocator's work ->
the allocation, one trace), this is forecast -> scaling action -> allocation.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.scaler.app import create_app
from shared.events import (
    ALLOCATIONS,
    DEMAND,
    FORECASTS,
    MODEL_REQUESTS,
    SCALING_ACTIONS,
    SCALING_SIGNALS,
    SERVER_METRICS,
    ModelLoaded,
)
from tests.integration.helpers import collect, running, start_group_at_end, wait_for
from tests.integration.scaler.conftest import send, settle, steady_windows
from tests.integration.scaler.test_scaler_flow import _has

pytestmark = pytest.mark.timeout(180)


def traced_records(records: list, model_id: str) -> list[tuple[dict, str]]:
    """(event, trace id of its traceparent header) of the records about `model_id`."""
    found = []
    for record in records:
        event = json.loads(record.value)
        if event.get("model_id") == model_id:
            traceparent = dict(record.headers).get("traceparent", b"").decode()
            found.append((event, traceparent.split("-")[1] if traceparent else ""))
    return found


async def test_an_evaluations_forecasts_and_actions_carry_its_trace(scaler_settings, kafka_bootstrap):
    topics = (DEMAND, SERVER_METRICS, SCALING_SIGNALS, MODEL_REQUESTS, ALLOCATIONS)
    await start_group_at_end(kafka_bootstrap, scaler_settings.group_id, *(t.name for t in topics))
    spans = InMemorySpanExporter()
    scaler = create_app(scaler_settings, spans)[1]
    model_id = f"scaler-trace-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    async with running(scaler.runtime.broker):
        await scaler.start()
        try:
            await send(kafka_bootstrap, DEMAND.name, steady_windows(model_id, "us-east-1", 5, 24, now), key=model_id)
            loaded = ModelLoaded(source="test", server_id=f"srv-{model_id}", model_id=model_id, region="us-east-1")
            await send(kafka_bootstrap, ALLOCATIONS.name, [loaded], key=model_id)
            assert await wait_for(lambda: _has(scaler.runtime, model_id, 24), timeout=60)
            await settle()
            assert await scaler.evaluate_once(now) is not None
            forecasts = await collect(
                kafka_bootstrap, FORECASTS.name, lambda rs: bool(traced_records(rs, model_id)), timeout=45
            )
            actions = await collect(
                kafka_bootstrap, SCALING_ACTIONS.name, lambda rs: bool(traced_records(rs, model_id)), timeout=45
            )
        finally:
            await scaler.stop()
    await scaler.runtime.close()

    (evaluation,) = [s for s in spans.get_finished_spans() if s.name == "scaler.evaluate"]
    assert evaluation.parent is None  # a round starts its own trace
    trace_id = format(evaluation.context.trace_id, "032x")
    assert evaluation.attributes["llmfleet.forecasts"] >= 1 and evaluation.attributes["llmfleet.actions"] >= 1
    # The records were published by the relay, after the round, yet in the round's trace.
    assert [t for _, t in traced_records(forecasts, model_id)] == [trace_id]
    scale_up = [(e, t) for e, t in traced_records(actions, model_id) if e["kind"] == "scale_up"]
    assert scale_up and all(t == trace_id for _, t in scale_up)
