"""The monitor's use cases on the fake store: recording fleet events and demand windows, judging alerts
and signals, a scrape round, and retention (no Kafka, no Postgres)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.monitor import jobs
from services.monitor.adapters.metrics import MonitorMetrics
from services.monitor.adapters.scraper import ScrapeError
from services.monitor.domain.fleet import Observation
from services.monitor.domain.rules import Metric
from services.monitor.settings import MonitorSettings
from services.monitor.use_cases import recording
from services.monitor.use_cases.judging import judge
from services.monitor.use_cases.scraping import Collector
from shared.events import (
    ALERTS,
    SCALING_SIGNALS,
    AlertState,
    DemandWindowReported,
    GpuPrice,
    ModelLoaded,
    PricesPublished,
    ScalingActionOverdue,
    ServerAllocated,
    ServerReleased,
    SignalKind,
)
from shared.metrics import new_registry
from tests.unit.monitor.fakes import FakeMonitorStore

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
SETTINGS = MonitorSettings()


def allocated(server: str = "s1") -> ServerAllocated:
    return ServerAllocated(
        source="t", server_id=server, endpoint="e", metrics_url=f"http://{server}/metrics", region="us-east-1",
        gpu_type="a100_80gb", gpu_count=1, cost_per_hour=4.0,
    )  # fmt: skip


def window(end: datetime, p95: float, tokens: int = 100_000) -> DemandWindowReported:
    return DemandWindowReported(
        source="t", model_id="m1", region="us-east-1", window_start=end - timedelta(seconds=60), window_end=end,
        requests=100, ok=100, tokens_in=tokens // 2, tokens_out=tokens // 2, latency_p95_ms=p95,
    )  # fmt: skip


async def record_fleet(store: FakeMonitorStore) -> None:
    assert await recording.on_allocation_changed(store, SETTINGS, "monitor.alloc", allocated()) == recording.NOTHING
    loaded = ModelLoaded(source="t", server_id="s1", model_id="m1", region="us-east-1")
    await recording.on_allocation_changed(store, SETTINGS, "monitor.alloc", loaded)


async def test_fleet_events_are_recorded_once():
    store = FakeMonitorStore()
    await record_fleet(store)
    event = allocated()
    before = store.state.targets.copy()
    await recording.on_allocation_changed(store, SETTINGS, "monitor.alloc", event)  # a new id: applied again, same row
    assert store.state.targets == before
    state_before = len(store.state.inbox)
    await recording.on_allocation_changed(store, SETTINGS, "monitor.alloc", event)  # redelivered: skipped
    assert len(store.state.inbox) == state_before
    assert store.state.models == {("s1", "m1"): ("m1", "us-east-1")}


async def test_a_demand_window_is_stored_with_its_cost_per_token():
    store = FakeMonitorStore()
    await record_fleet(store)
    prices = PricesPublished(
        source="cost", prices=[GpuPrice(region="us-east-1", gpu_type="a100_80gb", on_demand_per_hour=3.6,
                                        spot_per_hour=1.0, reserved_per_hour=2.0)],
    )  # fmt: skip
    await recording.on_prices_published(store, "monitor.prices", prices)
    await recording.on_demand_window(store, SETTINGS, "monitor.demand", window(T0, 500.0, tokens=1000))
    [(_, per_token)] = store.state.demand_windows
    assert per_token == pytest.approx(3.6 * 60 / 3600 / 1000)  # the published price wins over the allocation's


async def test_slow_windows_fire_one_alert_after_the_for_duration_and_resolve_once():
    store = FakeMonitorStore()
    verdicts = [
        await recording.on_demand_window(store, SETTINGS, "monitor.demand", window(T0 + timedelta(seconds=s), p95))
        for s, p95 in ((0, 3500.0), (30, 3500.0), (90, 3600.0), (120, 3600.0), (150, 1000.0))
    ]
    fired = [(i, a.rule, a.state) for i, v in enumerate(verdicts) for a in v.alerts]
    assert fired == [(2, "latency_p95_high", AlertState.FIRING), (4, "latency_p95_high", AlertState.RESOLVED)]
    assert [a.state for a in store.state.announced(ALERTS)] == [AlertState.FIRING, AlertState.RESOLVED]
    assert store.state.alert_history == store.state.announced(ALERTS)
    # p95 over 2.5 s asks for servers, at most once per cooldown (60 s): at 0 and at 90 s
    assert [i for i, v in enumerate(verdicts) if v.signals] == [0, 2]
    assert len(store.state.announced(SCALING_SIGNALS)) == 2
    assert store.state.firing() == set()


async def test_utilisation_signals_carry_their_size_and_gpu_type():
    store = FakeMonitorStore()
    scope = {"model_id": "m1", "region": "us-east-1"}
    inputs = [
        Observation(Metric.GPU_UTILIZATION, {**scope, "gpu_type": "a100_80gb"}, 0.9),
        Observation(Metric.GPU_UTILIZATION, {**scope, "gpu_type": "h100_80gb"}, 0.1),
        Observation(Metric.GPU_UTILIZATION, {**scope, "gpu_type": "l4"}, 0.5),  # inside the band: nothing
    ]
    async with store.transaction() as repo:
        verdict = await judge(repo, [], [], T0, "monitor", inputs, 60.0)
    raised = {(s.gpu_type, s.kind, s.factor) for s in verdict.signals}
    assert raised == {("a100_80gb", SignalKind.SCALE_UP, 0.25), ("h100_80gb", SignalKind.SCALE_DOWN, -0.20)}
    assert all((s.model_id, s.region) == ("m1", "us-east-1") for s in verdict.signals)
    assert len(store.state.announced(SCALING_SIGNALS)) == 2
    # Inside the cooldown (per kind and scope, GPU type included) a second round raises nothing.
    async with store.transaction() as repo:
        again = await judge(repo, [], [], T0 + timedelta(seconds=30), "monitor", inputs, 60.0)
    assert again.signals == []


async def test_an_overdue_action_alerts_until_an_allocation_confirms_it():
    store = FakeMonitorStore()
    overdue = ScalingActionOverdue(
        source="a", action_id="act-1", model_id="m1", region="us-east-1", requested_at=T0, waited_s=120.0
    )
    fired = await recording.on_scaling_action_overdue(store, SETTINGS, "monitor.overdue", overdue)
    assert [(a.rule, a.state) for a in fired.alerts] == [("scaling_action_overdue", AlertState.FIRING)]
    again = await recording.on_scaling_action_overdue(store, SETTINGS, "monitor.overdue", overdue)
    assert again.alerts == []  # a redelivery changes nothing
    confirmed = allocated().model_copy(update={"action_id": "act-1"})
    resolved = await recording.on_allocation_changed(store, SETTINGS, "monitor.alloc", confirmed)
    assert [(a.rule, a.state) for a in resolved.alerts] == [("scaling_action_overdue", AlertState.RESOLVED)]


class DownScraper:
    """Every target refuses its scrape."""

    async def fetch_all(self, targets: Any) -> dict[str, str | ScrapeError]:
        return {server_id: ScrapeError("refused") for server_id, _ in targets}


async def test_a_target_failing_its_scrapes_is_down_until_it_is_released():
    store = FakeMonitorStore()
    await record_fleet(store)
    clock = iter(T0 + timedelta(seconds=5 * i) for i in range(10))
    published: list[object] = []

    async def publish(events: list[Any]) -> None:
        published.extend(events)

    metrics = MonitorMetrics(new_registry())
    collector = Collector(store, SETTINGS, DownScraper(), metrics, publish, lambda: next(clock))  # type: ignore[arg-type]
    verdicts = [await collector.run_round() for _ in range(SETTINGS.target_down_after)]
    assert [len(v.alerts) for v in verdicts] == [0] * (SETTINGS.target_down_after - 1) + [1]
    assert store.state.targets["s1"].consecutive_failures == SETTINGS.target_down_after
    assert store.state.last_errors["s1"] == "refused"
    assert metrics.scrape_targets.labels("down")._value.get() == 1
    released = ServerReleased(source="t", server_id="s1", region="us-east-1")
    verdict = await recording.on_allocation_changed(store, SETTINGS, "monitor.alloc", released)
    assert [(a.rule, a.state) for a in verdict.alerts] == [("scrape_target_down", AlertState.RESOLVED)]
    assert store.state.targets == {} and published == []


def test_retention_keeps_windows_for_retention_s_and_prunes_only_sent_outbox_rows():
    kept = {k.table.name: (k.column, k.keep_s) for k in jobs.retained(SETTINGS)}
    assert kept["metric_window"] == kept["demand_window"] == ("window_end", SETTINGS.retention_s)
    assert kept["inbox"] == ("received_at", SETTINGS.inbox_retention_s)
    assert kept["outbox"] == ("published_at", SETTINGS.outbox_retention_s)  # unsent rows (NULL) never match
    assert kept["alert_history"] == ("occurred_at", SETTINGS.history_retention_s)
