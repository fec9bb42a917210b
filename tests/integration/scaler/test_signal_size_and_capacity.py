"""On real PostgreSQL (migration 0006): signals keep their size and GPU type, and server reports build the
measured capacity per model and GPU type; the evaluation round plans with both."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.scaler.adapters.repository import scaler_store
from services.scaler.domain.measured import Measured
from services.scaler.use_cases import recording
from services.scaler.use_cases.evaluation import read_snapshot
from shared.db import create_engine, session_factory
from shared.events import ModelLoaded, ScalingSignalRaised, ServerMetricsReported, SignalKind

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def signal(model_id: str | None, kind: SignalKind, factor: float, at: datetime, **kw) -> ScalingSignalRaised:
    return ScalingSignalRaised(
        source="monitor", occurred_at=at, kind=kind, model_id=model_id, region=kw.pop("region", "us-east-1"),
        metric="gpu_utilization", value=0.9, threshold=0.85, factor=factor, **kw,
    )  # fmt: skip


async def test_signal_sizes_and_measured_capacity_round_trip(scaler_settings):
    engine = create_engine(scaler_settings.database_url, "scaler")
    sessions = session_factory(engine)
    store = scaler_store(sessions)
    model, other, idle = (f"size-{uuid.uuid4().hex[:8]}-{n}" for n in ("a", "b", "c"))
    server = f"srv-{model}"
    now = datetime.now(UTC)
    consumer = "scaler.test-size"
    events = [
        signal(model, SignalKind.SCALE_UP, 0.25, now, gpu_type="a100_80gb"),
        signal(model, SignalKind.SCALE_DOWN, -0.2, now, gpu_type="h100_80gb"),
        signal(model, SignalKind.ADD_SERVERS, 1.0, now - timedelta(hours=1)),  # too old to count
        signal(idle, SignalKind.SCALE_DOWN, -0.2, now, gpu_type="a100_80gb"),
        signal(idle, SignalKind.SCALE_DOWN, -0.5, now, gpu_type="l4"),
        signal(None, SignalKind.ADD_INSTANCES, 0.5, now, server_id=server, region=None),  # about a server
    ]
    loaded = ModelLoaded(source="allocator", server_id=server, model_id=other, region="eu-west-1")
    assert await recording.record_allocation(store, consumer, loaded, now, scaler_settings.backoff)
    for event in events:
        assert await recording.record_signal(store, consumer, event)
    for rps in (1.0, 1.0, 100.0):  # the third window is wild: it moves the estimate by 20% at most
        report = ServerMetricsReported(
            source="monitor", server_id=server, model_id=model, region="us-east-1", gpu_type="a100_80gb",
            window_s=60, utilization=1.0, utilization_derived=True, requests_ok=60, throughput_rps=rps,
        )  # fmt: skip
        assert await recording.record_server_metrics(store, consumer, report)

    since = now - timedelta(minutes=5)
    async with store.transaction() as repo:
        sizes = await repo.signal_sizes(since)
        pressures = await repo.pressures(since)
        measured = await repo.measured_capacities()
        snapshot = await read_snapshot(repo, scaler_settings, now)
    assert sizes[(model, "us-east-1")] == pytest.approx(0.25)  # up wins, by its own size
    assert pressures[(model, "us-east-1")] == 1
    assert sizes[(idle, "us-east-1")] == pytest.approx(0.2)  # only downs: the smallest cut
    assert pressures[(idle, "us-east-1")] == -1
    assert sizes[(other, "eu-west-1")] == pytest.approx(0.5)  # the server's model, in its region
    estimate = measured[(model, "a100_80gb")]
    assert estimate.samples == 3 and estimate.requests_per_hour == pytest.approx(3600.0 * 1.2)
    assert snapshot.signal_sizes[(model, "us-east-1")] == pytest.approx(0.25)
    assert snapshot.measured[(model, "a100_80gb")] == Measured(estimate.requests_per_hour, 3, estimate.updated_at)
    await engine.dispose()
