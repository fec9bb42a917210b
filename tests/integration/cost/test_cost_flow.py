"""Allocation, metrics, demand and forecast events on real Kafka lead to reports and recommendations,
each persisted and announced once even when Kafka delivers the events again."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from services.cost.adapters.orm import inbox, recommendation, server_utilization
from services.cost.use_cases import operations
from shared.events import (
    ALLOCATIONS,
    COST_RECOMMENDATIONS,
    COST_REPORTS,
    DEMAND,
    FORECASTS,
    PRICES,
    SCALING_ACTIONS,
    SERVER_METRICS,
    AllocationFailed,
    CostReportRequested,
    DemandForecasted,
    DemandWindowReported,
    Event,
    ModelLoaded,
    ServerAllocated,
    ServerMetricsReported,
)
from tests.integration.helpers import collect, produce_raw, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def fleet_events(gpu_type: str, model: str) -> tuple[list[Event], list[Event]]:
    """A 10-GPU on-demand server holding `model`, 85% busy; and an hour of demand plus a forecast."""
    server = f"srv-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    allocations: list[Event] = [
        ServerAllocated(
            source="test",
            server_id=server,
            endpoint="127.0.0.1:1",
            metrics_url="http://127.0.0.1:2/metrics",
            region="us-east-1",
            gpu_type=gpu_type,
            gpu_count=10,
            cost_per_hour=41.0,
        ),
        ModelLoaded(source="test", server_id=server, model_id=model, region="us-east-1"),
    ]
    others: list[Event] = [
        ServerMetricsReported(
            source="test",
            server_id=server,
            model_id=model,
            region="us-east-1",
            gpu_type=gpu_type,
            window_s=60.0,
            utilization=0.85,
            utilization_derived=True,
        ),
        DemandWindowReported(
            source="test",
            model_id=model,
            region="us-east-1",
            window_start=now - timedelta(hours=1),
            window_end=now,
            requests=1000,
            tokens_in=100_000,
            tokens_out=310_000,
            latency_p50_ms=400.0,
        ),
        DemandForecasted(
            source="test",
            model_id=model,
            region="us-east-1",
            horizon_start=now,
            requests_per_hour=[28_800.0] * 24,  # 10 GPUs' worth at 3,600 req/GPU-h x 0.8
            confidence=0.9,
        ),
    ]
    return allocations, others


def stale_markers(allocations: list[Event], others: list[Event]) -> list[Event]:
    """One event per topic that changes nothing: a failure, and reports older than the ones sent."""
    metrics, window, forecast = others
    long_ago = timedelta(days=3)
    return [
        AllocationFailed(source="test", model_id=allocations[1].model_id, region="us-east-1", reason="marker"),
        metrics.model_copy(update={"event_id": uuid.uuid4(), "occurred_at": metrics.occurred_at - long_ago}),
        window.model_copy(
            update={
                "event_id": uuid.uuid4(),
                "window_start": window.window_start - long_ago,
                "window_end": window.window_end - long_ago,
            }
        ),
        forecast.model_copy(update={"event_id": uuid.uuid4(), "horizon_start": forecast.horizon_start - long_ago}),
    ]


async def produce_twice(bootstrap: str, topic: str, events: list[Event], key: str) -> None:
    """Each event's bytes sent twice, as Kafka redelivers after a crash before the offset commit."""
    raw = [event.model_dump_json().encode() for event in events]
    await produce_raw(bootstrap, topic, [r for pair in zip(raw, raw, strict=True) for r in pair], key=key.encode())


def values(records, **match) -> list[dict]:
    decoded = [json.loads(r.value) for r in records]
    return [d for d in decoded if all(d.get(k) == v for k, v in match.items())]


async def test_events_lead_to_a_report_and_recommendations_once(cost_app, kafka_bootstrap, gpu_type):
    runtime, model = cost_app.runtime, f"model-{uuid.uuid4().hex[:8]}"
    allocations, others = fleet_events(gpu_type, model)
    await produce_twice(kafka_bootstrap, ALLOCATIONS.name, allocations, model)
    await produce_twice(kafka_bootstrap, SERVER_METRICS.name, others[:1], model)
    await produce_twice(kafka_bootstrap, DEMAND.name, others[1:2], model)
    await produce_twice(kafka_bootstrap, FORECASTS.name, others[2:], model)
    # A later, state-neutral event behind the duplicates on each partition: once it is in the inbox,
    # the duplicates before it have been read (and skipped).
    markers = stale_markers(allocations, others)
    for topic, marker in zip((ALLOCATIONS, SERVER_METRICS, DEMAND, FORECASTS), markers, strict=True):
        await produce_raw(kafka_bootstrap, topic.name, [marker.model_dump_json().encode()], key=model.encode())

    async def applied() -> bool:
        async with runtime.sessions() as session:
            ids = [e.event_id for e in others + markers]
            seen = await session.execute(select(func.count()).select_from(inbox).where(inbox.c.event_id.in_(ids)))
            return seen.scalar_one() == len(ids)

    assert await wait_for(applied, timeout=60)
    async with runtime.sessions() as session:  # every event once, though each came twice
        for event in allocations + others:
            count = select(func.count()).select_from(inbox).where(inbox.c.event_id == event.event_id)
            assert (await session.execute(count)).scalar_one() == 1
        assert (await session.execute(select(func.count()).select_from(server_utilization))).scalar_one() >= 1

    first = await cost_app.cycle_once()
    second = await cost_app.cycle_once()  # nothing changed: no recommendation again
    assert first is not None and second is not None
    assert first.report.by_gpu_type_per_hour[gpu_type] == pytest.approx(41.0)  # 10 x 4.10
    assert first.report.per_1k_tokens[model] == pytest.approx(41.0 / 410)  # 410,000 tokens in the hour
    mine = {e.kind: e for e in first.announced if e.gpu_type == gpu_type}
    assert set(mine) == {"spot", "reserved", "capacity_mix"}
    assert mine["spot"].savings_per_month == pytest.approx(14_665.70)
    assert mine["reserved"].savings_per_month == pytest.approx(5_387.40)
    assert [e for e in second.announced if e.gpu_type == gpu_type] == []

    reports = await collect(
        kafka_bootstrap, COST_REPORTS.name, lambda rs: len(values(rs, report_id=first.report.report_id)) == 1
    )
    assert values(reports, report_id=first.report.report_id)[0]["by_gpu_type_per_hour"][gpu_type] == 41.0
    recs = await collect(kafka_bootstrap, COST_RECOMMENDATIONS.name, lambda rs: False, timeout=4.0)
    assert sorted(r["kind"] for r in values(recs, gpu_type=gpu_type)) == ["capacity_mix", "reserved", "spot"]
    async with runtime.sessions() as session:
        rows = await session.execute(select(func.count()).where(recommendation.c.gpu_type == gpu_type))
        assert rows.scalar_one() == 3

    latest = await operations.latest_report(runtime.sessions)
    assert latest is not None and latest["report"]["report_id"] == second.report.report_id
    assert {tuple(p["regions"]) for p in latest["region_plans"][model]} >= {("us-east-1",), ("eu-west-1",)}
    open_ids = {r["recommendation_id"] for r in await operations.open_recommendations(runtime.sessions)}
    assert {e.recommendation_id for e in mine.values()} <= open_ids

    sample = runtime.registry.get_sample_value(
        "llmfleet_cost_fleet_per_hour", {"region": "us-east-1", "gpu_type": gpu_type, "pricing_class": "on_demand"}
    )
    assert sample == pytest.approx(41.0)
    assert runtime.registry.get_sample_value("llmfleet_cost_per_1k_tokens", {"model": model}) == pytest.approx(0.1)


async def test_applying_a_recommendation_is_explicit_and_happens_once(cost_app, kafka_bootstrap, gpu_type):
    runtime, model = cost_app.runtime, f"model-{uuid.uuid4().hex[:8]}"
    allocations, others = fleet_events(gpu_type, model)
    await produce_raw(kafka_bootstrap, ALLOCATIONS.name, [e.model_dump_json().encode() for e in allocations])
    await produce_raw(kafka_bootstrap, SERVER_METRICS.name, [others[0].model_dump_json().encode()])

    async def spot_recommended():
        result = await cost_app.cycle_once()
        found = [e for e in (result.announced if result else []) if e.gpu_type == gpu_type and e.kind == "spot"]
        return found[0] if found else None

    spot = await wait_for(spot_recommended, timeout=60, interval=1.0)
    assert spot is not None
    request_id = f"apply-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    events = await operations.apply_recommendation(runtime.sessions, spot.recommendation_id, request_id, "test", now)
    again = await operations.apply_recommendation(runtime.sessions, spot.recommendation_id, "other", "test", now)
    assert [e.model_dump() for e in again] == [e.model_dump() for e in events]
    assert events[0].changes == {"on_demand": -7, "spot": 7}
    cost_app.relay.notify()
    actions = await collect(
        kafka_bootstrap, SCALING_ACTIONS.name, lambda rs: len(values(rs, request_id=request_id)) >= 1
    )
    assert values(actions, request_id=request_id)[0]["type"] == "capacity_change_requested"
    after = await collect(kafka_bootstrap, SCALING_ACTIONS.name, lambda rs: False, timeout=3.0)
    assert len(values(after, recommendation_id=spot.recommendation_id)) == 1
    with pytest.raises(LookupError):
        await operations.apply_recommendation(runtime.sessions, "spot-missing", "x", "test", now)


@pytest.mark.parametrize("cost_app", [1.0], indirect=True)  # a scheduled cycle every second
async def test_reports_on_schedule_and_on_demand_once_and_prices_are_published(cost_app, kafka_bootstrap, gpu_type):
    request = CostReportRequested(source="test", request_id=f"req-{uuid.uuid4().hex[:8]}")
    await produce_raw(kafka_bootstrap, COST_REPORTS.name, [request.model_dump_json().encode()] * 2)
    reports = await collect(
        kafka_bootstrap, COST_REPORTS.name, lambda rs: len(values(rs, requested_by=request.request_id)) >= 1
    )
    answered = values(reports, requested_by=request.request_id)
    assert answered and answered[0]["trigger"] == "on_demand"
    later = await collect(kafka_bootstrap, COST_REPORTS.name, lambda rs: False, timeout=3.0)
    assert len(values(later, requested_by=request.request_id)) == 1

    def scheduled() -> bool:
        registry = cost_app.runtime.registry
        return (registry.get_sample_value("llmfleet_cost_reports_total", {"trigger": "schedule"}) or 0) >= 1

    assert await wait_for(scheduled, timeout=20)

    def lists_mine(records) -> bool:
        return any(p["gpu_type"] == gpu_type for v in values(records) for p in v.get("prices", []))

    # The fixture edited the catalogue (a new GPU type) and the service announced its prices on start.
    assert lists_mine(await collect(kafka_bootstrap, PRICES.name, lists_mine, timeout=30))
