"""The cost use cases on the fake store: intake once per event, the cycle's report and recommendations
announced once, and operator actions (no Kafka, no Postgres)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.cost.domain.cycle import Params
from services.cost.domain.pricing import GpuRate
from services.cost.use_cases import operations, recording, reporting
from shared.events import (
    COST_RECOMMENDATIONS,
    COST_REPORTS,
    PRICES,
    SCALING_ACTIONS,
    AllocationFailed,
    CostReportRequested,
    DemandForecasted,
    DemandWindowReported,
    Event,
    ModelLoaded,
    ServerAllocated,
    ServerMetricsReported,
    ServerReleased,
)
from tests.unit.cost.fakes import FakeCostStore

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def busy_fleet(server: str = "s1", model: str = "m1") -> list[Event]:
    """A 10-GPU on-demand a100 server holding `model`, 85% busy, an hour of demand and a forecast."""
    return [
        ServerAllocated(
            source="t", occurred_at=NOW - timedelta(hours=2), server_id=server, endpoint="e", metrics_url="u",
            region="us-east-1", gpu_type="a100_80gb", gpu_count=10, cost_per_hour=41.0,
        ),
        ModelLoaded(source="t", server_id=server, model_id=model, region="us-east-1"),
        ServerMetricsReported(
            source="t", occurred_at=NOW, server_id=server, model_id=model, region="us-east-1",
            gpu_type="a100_80gb", window_s=60.0, utilization=0.85, utilization_derived=True,
        ),
        DemandWindowReported(
            source="t", model_id=model, region="us-east-1", window_start=NOW - timedelta(hours=1), window_end=NOW,
            requests=1000, tokens_in=40_000, tokens_out=60_000, latency_p50_ms=400.0,
        ),
        DemandForecasted(
            source="t", model_id=model, region="us-east-1", horizon_start=NOW,
            requests_per_hour=[28_800.0] * 24, confidence=0.9,  # 10 GPUs at 3,600 req/GPU-h x 0.8
        ),
    ]  # fmt: skip


def context(now: datetime = NOW, trigger: str = "schedule", requested_by: str | None = None) -> reporting.CycleContext:
    return reporting.CycleContext(now, str(uuid.uuid4()), "cost", Params(), 3600.0, trigger, requested_by)  # type: ignore[arg-type]


async def fed(events: list[Event]) -> FakeCostStore:
    store = FakeCostStore()
    for event in events:
        assert await recording.record(store, "cost.test", event)
    return store


async def test_each_event_is_applied_once():
    store = FakeCostStore()
    events = busy_fleet()
    assert [await recording.record(store, "cost.test", e) for e in events] == [True] * 5
    assert [await recording.record(store, "cost.test", e) for e in events] == [False] * 5  # redelivered
    assert (
        await recording.record(
            store, "cost.test", AllocationFailed(source="t", model_id="m1", region="us-east-1", reason="x")
        )
        is False
    )
    servers = await _servers(store)
    assert [(s.server_id, s.models, s.utilization) for s in servers] == [("s1", ("m1",), 0.85)]


async def test_release_wins_over_a_late_duplicate_allocation_and_late_metrics_lose():
    store = await fed(busy_fleet())
    allocated = busy_fleet()[0]
    await recording.record(
        store, "cost.test", ServerReleased(source="t", occurred_at=NOW, server_id="s1", region="us-east-1")
    )
    late_copy = allocated.model_copy(update={"event_id": uuid.uuid4()})
    await recording.record(store, "cost.test", late_copy)
    assert await _servers(store) == []
    again = allocated.model_copy(update={"event_id": uuid.uuid4(), "occurred_at": NOW + timedelta(minutes=1)})
    await recording.record(store, "cost.test", again)
    old = busy_fleet()[2].model_copy(update={"event_id": uuid.uuid4(), "occurred_at": NOW - timedelta(days=1)})
    await recording.record(store, "cost.test", old.model_copy(update={"utilization": 0.1}))
    assert [(s.server_id, s.utilization) for s in await _servers(store)] == [("s1", 0.85)]


async def test_a_cycle_reports_and_announces_each_recommendation_once():
    store = await fed(busy_fleet())
    first = await reporting.run_cycle(store, context())
    second = await reporting.run_cycle(store, context(NOW + timedelta(minutes=5)))
    assert first is not None and second is not None
    assert first.report.total_per_hour == pytest.approx(41.0)
    assert {e.kind for e in first.announced} == {"spot", "reserved", "capacity_mix"}
    assert second.announced == []
    assert [r.report_id for r in store.state.announced(COST_REPORTS)] == [
        first.report.report_id,
        second.report.report_id,
    ]
    recommended = store.state.announced(COST_RECOMMENDATIONS)
    assert sorted(e.recommendation_id for e in recommended) == sorted(e.recommendation_id for e in first.announced)
    assert second.open_savings_by_kind.keys() == {"spot", "reserved", "capacity_mix"}
    latest = await operations.latest_report(store)
    assert latest is not None and latest["report"]["report_id"] == second.report.report_id
    assert latest["servers"] == ["s1"]


async def test_a_recommendation_whose_condition_ends_is_withdrawn_and_announced_again_when_it_returns():
    store = await fed(busy_fleet())
    first = await reporting.run_cycle(store, context())
    assert first is not None
    await recording.record(
        store, "cost.test", ServerReleased(source="t", occurred_at=NOW, server_id="s1", region="us-east-1")
    )
    empty = await reporting.run_cycle(store, context())
    assert empty is not None and empty.announced == [] and empty.open_savings_by_kind == {}
    statuses = {r["status"] for r in store.state.recommendations.values()}
    assert statuses == {"withdrawn"}
    back = busy_fleet()[0].model_copy(update={"event_id": uuid.uuid4(), "occurred_at": NOW + timedelta(minutes=1)})
    await recording.record(store, "cost.test", back)
    await recording.record(store, "cost.test", busy_fleet()[1])
    returned = await reporting.run_cycle(store, context())
    assert returned is not None
    assert {e.recommendation_id for e in returned.announced} == {e.recommendation_id for e in first.announced}


async def test_another_replica_holding_the_turn_skips_the_cycle_without_a_trace():
    store = await fed(busy_fleet())
    store.leader_busy = True
    commits = store.commits
    assert await reporting.run_cycle(store, context()) is None
    assert store.state.reports == [] and store.state.outbox == []
    assert store.commits == commits + 1  # the skipped cycle's transaction changed nothing


async def test_a_report_request_is_answered_once_and_a_busy_turn_rolls_back_for_a_retry():
    store = await fed(busy_fleet())
    request = CostReportRequested(source="t", request_id="r1")
    store.leader_busy = True
    with pytest.raises(TimeoutError):
        await reporting.report_on_request(store, "cost.on_request", request, context(trigger="on_demand"))
    assert store.state.reports == []  # rolled back with its inbox row: the redelivery is answered
    store.leader_busy = False
    answered = await reporting.report_on_request(
        store, "cost.on_request", request, context(trigger="on_demand", requested_by="r1")
    )
    again = await reporting.report_on_request(
        store, "cost.on_request", request, context(trigger="on_demand", requested_by="r1")
    )
    assert answered is not None and again is None
    assert answered.report.trigger == "on_demand" and answered.report.requested_by == "r1"


async def test_editing_a_price_announces_the_new_price_list():
    store = FakeCostStore()
    event = await operations.set_gpu_rate(store, GpuRate("t4-test", 1.0, 0.3, 0.7), "cost", NOW)
    assert any(p.gpu_type == "t4-test" and p.spot_per_hour == pytest.approx(0.3) for p in event.prices)
    assert store.state.announced(PRICES) == [event]


async def test_applying_a_recommendation_queues_its_requests_once():
    store = await fed(busy_fleet())
    cycle = await reporting.run_cycle(store, context())
    assert cycle is not None
    spot = next(e for e in cycle.announced if e.kind == "spot")
    opened = await operations.open_recommendations(store)
    assert spot.recommendation_id in {r["recommendation_id"] for r in opened}
    events = await operations.apply_recommendation(store, spot.recommendation_id, "req-1", "cost", NOW)
    again = await operations.apply_recommendation(store, spot.recommendation_id, "req-2", "cost", NOW)
    assert [e.model_dump() for e in again] == [e.model_dump() for e in events]
    assert events[0].changes == {"on_demand": -7, "spot": 7}
    assert store.state.announced(SCALING_ACTIONS) == events
    with pytest.raises(LookupError):
        await operations.apply_recommendation(store, "spot-missing", "req-3", "cost", NOW)
    withdrawn = next(e for e in cycle.announced if e.kind == "reserved")
    store.state.recommendations[withdrawn.recommendation_id]["status"] = "withdrawn"
    with pytest.raises(ValueError, match="not open"):
        await operations.apply_recommendation(store, withdrawn.recommendation_id, "req-4", "cost", NOW)


async def _servers(store: FakeCostStore):
    async with store.transaction() as repo:
        return await repo.load_servers()


async def test_an_applied_capacity_change_shows_in_the_next_report_and_a_refused_one_does_not():
    from shared.events import CapacityChanged, RepricedServer

    store = await fed(busy_fleet())
    before = await reporting.run_cycle(store, context())
    assert before is not None and before.report.total_per_hour == pytest.approx(41.0)
    assert before.report.committed_per_hour == 0 and before.report.capacity_by_pool == {}
    refused = CapacityChanged(
        source="allocator", request_id="r0", recommendation_id="x", region="us-east-1", gpu_type="a100_80gb",
        result="refused", reason="no", gpus_by_class={"on_demand": 10},
    )  # fmt: skip
    assert not await recording.record(store, "cost.test", refused)
    applied = CapacityChanged(
        source="allocator", request_id="r1", recommendation_id="reserved-x", region="us-east-1",
        gpu_type="a100_80gb", result="applied", changes={"on_demand": -12, "reserved": 12},
        gpus_by_class={"on_demand": 88, "spot": 0, "reserved": 12}, commitment_months=12,
        repriced=[RepricedServer(server_id="s1", pricing_class="reserved", cost_per_hour=28.7)],
    )  # fmt: skip
    assert await recording.record(store, "cost.test", applied)
    assert not await recording.record(store, "cost.test", applied)  # once
    after = await reporting.run_cycle(store, context(NOW + timedelta(minutes=5)))
    assert after is not None
    assert after.report.total_per_hour == pytest.approx(28.7)  # 10 x 2.87: the server is now reserved
    assert after.report.by_pricing_class_per_hour == {"reserved": pytest.approx(28.7)}
    assert after.report.committed_per_hour == pytest.approx(12 * 2.87)  # 2 reserved GPUs wait for servers
    assert after.report.capacity_by_pool == {"us-east-1/a100_80gb": {"on_demand": 88, "spot": 0, "reserved": 12}}
