"""The report's figures, computed from hand-built runs whose answers are worked out by hand."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmfleet.report import build_summary
from llmfleet.report.fleet import capacity_steps
from llmfleet.report.stats import peak_in_window, percentile, plot_bin_s, run_end_s, unique_events
from shared.events import (
    AlertChanged,
    AlertState,
    CostRecommended,
    DemandWindowReported,
    ModelUnloaded,
    ScalingActionOverdue,
    ServerMetricsReported,
    ServerReleased,
    Severity,
)
from tests.unit.test_report_support import action, allocated, loaded, record, run, seen

T0 = datetime(2026, 11, 27, 23, 0, tzinfo=UTC)


def test_counts_add_up_and_reasons_are_counted() -> None:
    records = [
        record("a"),
        record("b"),
        record("c"),
        record("d", "rejected", reason="queue full"),
        record("e", "rejected", reason="queue full"),
        record("f", "failed", reason="triton timeout"),
        record("g", None),
        record("h", None, sent=None),  # scheduled, never sent
    ]
    req = build_summary(run(records))["requests"]
    assert (req["sent"], req["ok"], req["rejected"], req["failed"], req["missing"]) == (7, 3, 2, 1, 1)
    assert req["counts_add_up"] is True
    assert req["not_sent"] == 1
    assert req["duplicate_ids"] == 0
    assert req["top_reasons"][0] == {"status": "rejected", "reason": "queue full", "count": 2}
    assert req["top_reasons"][1] == {"status": "failed", "reason": "triton timeout", "count": 1}


def test_an_unknown_status_breaks_the_sum() -> None:
    req = build_summary(run([record("a"), record("b", "lost")]))["requests"]
    assert req["unknown_status"] == 1
    assert req["counts_add_up"] is False


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) is None


@given(st.lists(st.floats(0, 1e6), min_size=1, max_size=50), st.floats(0, 100), st.floats(0, 100))
def test_percentile_lies_within_the_values_and_grows_with_q(values: list[float], q1: float, q2: float) -> None:
    low, high = sorted((q1, q2))
    p_low, p_high = percentile(values, low), percentile(values, high)
    assert p_low is not None and p_high is not None
    assert min(values) <= p_low <= p_high + 1e-6 and p_high <= max(values)


def test_latency_percentiles_on_a_hand_computed_set() -> None:
    # 100, 200, ... 1000 ms and one 2500 ms: p50 rank 5 -> 600; p95 rank 9.5 -> 1750; p99 rank 9.9 -> 2350.
    records = [record(str(i), latency=i / 10, router_ms=i * 10.0) for i in range(1, 11)]
    records += [record("slow", latency=2.5), record("no", "rejected", latency=9.0)]
    lat = build_summary(run(records))["latency"]
    assert (lat["p50_ms"], lat["p95_ms"], lat["p99_ms"], lat["max_ms"]) == (600.0, 1750.0, 2350.0, 2500.0)
    assert lat["count"] == 11
    assert lat["share_within_target"] == round(10 / 11, 4)
    assert lat["p95_meets_target"] is True
    assert lat["router_total_ms"] == {"count": 10, "p50_ms": 55.0, "p95_ms": 95.5}
    assert lat["by_model"]["code"]["p50_ms"] == 600.0


def test_p95_over_the_target_is_reported_as_missed() -> None:
    lat = build_summary(run([record("a", latency=3.0), record("b", latency=2.5)]))["latency"]
    assert lat["p95_meets_target"] is False
    assert lat["share_within_target"] == 0.0


def test_throughput_over_send_and_drain_wall_time() -> None:
    records = [record(f"r{i}", sent=float(i), tokens_out=50, prompt=100) for i in range(20)]
    thr = build_summary(run(records, send_wall_s=80.0, drain_wall_s=20.0))["throughput"]
    assert thr["ok_requests_per_s"] == 0.2
    assert thr["output_tokens_per_s"] == 10.0  # 20 x 50 / 100 s
    assert thr["prompt_tokens_per_s"] == 20.0
    assert thr["peak_10s_sent_per_s"] == 1.0  # any 10 s window holds 10 of the sends, one a second


def test_the_peak_rate_is_over_a_sliding_window() -> None:
    # Fixed 10 s bins would see 2 + 2; the window [8, 18) holds all four.
    records = [record(f"r{t}", sent=t) for t in (8.0, 9.0, 10.0, 11.0, 30.0)]
    assert build_summary(run(records))["throughput"]["peak_10s_sent_per_s"] == 0.4
    assert peak_in_window([0.0, 10.0, 20.0], 10.0) == 1
    assert peak_in_window([], 10.0) == 0


def test_batch_size_from_the_routers_windows() -> None:
    def window(model: str, requests: int, batches: int) -> DemandWindowReported:
        return DemandWindowReported(
            source="router", model_id=model, region="us-east-1", window_start=T0, window_end=T0,
            requests=requests, ok=requests, batches=batches,
        )  # fmt: skip

    events = [seen(1, window("code", 10, 4)), seen(2, window("code", 6, 4)), seen(3, window("conv", 3, 0))]
    summary = build_summary(run([record("a")], events))
    assert summary["batching"]["code"] == {"windows": 2, "requests": 16, "ok": 16, "batches": 8, "mean_batch_size": 2.0}
    assert summary["batching"]["conv"]["mean_batch_size"] is None
    assert any("conv" in note for note in summary["notes"])


def test_capacity_timeline_from_loaded_unloaded_and_released() -> None:
    events = [
        seen(10, loaded("s1", "code", 2)),
        seen(20, loaded("s2", "code", 1)),
        seen(25, loaded("s2", "conv", None)),
        seen(30, ModelUnloaded(source="allocator", server_id="s1", model_id="code", region="us-east-1")),
        seen(35, loaded("s2", "code", 3)),  # more instances on the same server replace the old count
        seen(40, ServerReleased(source="allocator", server_id="s2", region="us-east-1")),
    ]
    assert capacity_steps(events) == {
        "code": [(10, 2), (20, 3), (30, 1), (35, 3), (40, 0)],
        "conv": [(25, 1), (40, 0)],
    }
    alloc = build_summary(run([record("a")], events))["allocations"]
    assert alloc["peak_instances"] == {"code": 3, "conv": 1}
    assert alloc["peak_servers"] == 2
    assert alloc["servers_released"] == 1


def test_cost_of_one_4_dollar_server_for_90_s_over_1000_tokens() -> None:
    events = [
        seen(10, allocated("s1", 4.0)),
        seen(100, ServerReleased(source="allocator", server_id="s1", region="us-east-1")),
    ]
    measured = build_summary(run([record("a", tokens_out=600, prompt=400)], events))["cost"]["measured"]
    assert measured["dollars"] == pytest.approx(0.1)  # 4 $/h x 90 s / 3600
    assert measured["tokens"] == 1000
    assert measured["per_1k_tokens"] == pytest.approx(0.1)
    assert measured["label"] == "at wall-clock rates, compressed trace"


def test_a_server_never_released_is_priced_until_the_run_ends() -> None:
    # Sent at 0, 60 s of sending + 40 s of drain: the run ends at 100 s.
    events = [seen(0, allocated("s1", 3.6)), seen(50, allocated("s2", 7.2))]
    measured = build_summary(run([record("a", tokens_out=1000, prompt=0)], events))["cost"]["measured"]
    assert measured["dollars"] == pytest.approx(0.1 + 0.1)
    assert measured["server_hours"] == pytest.approx(150 / 3600, abs=1e-5)


def test_recommendations_count_once_and_a_newer_one_about_the_same_pool_supersedes() -> None:
    def rec(rid: str, region: str, savings: float) -> CostRecommended:
        return CostRecommended(source="cost", recommendation_id=rid, kind="spot", region=region,
                               gpu_type="a100_80gb", summary=f"{rid} to spot", savings_per_month=savings)  # fmt: skip

    events = [
        seen(1, rec("r1", "us-east-1", 100.0)),
        seen(2, rec("r1", "us-east-1", 100.0)),  # delivered twice
        seen(3, rec("r2", "eu-west-1", 30.0)),
        seen(4, rec("r3", "us-east-1", 120.0)),  # the next cycle's figure for the same pool
    ]
    recs = build_summary(run([record("a")], events))["recommendations"]
    assert recs["count"] == 2 and recs["superseded"] == 1
    assert recs["total_savings_per_month"] == 150.0
    assert [r["recommendation_id"] for r in recs["items"]] == ["r3", "r2"]


def test_alerts_fired_resolved_and_still_firing() -> None:
    def alert(alert_id: str, state: str) -> AlertChanged:
        return AlertChanged(source="monitor", alert_id=alert_id, rule=f"rule-{alert_id}", severity=Severity.HIGH,
                            state=AlertState(state), value=1.0, threshold=0.5, scope={"model_id": "code"})  # fmt: skip

    events = [seen(10, alert("a1", "firing")), seen(20, alert("a1", "resolved")), seen(30, alert("a2", "firing"))]
    alerts = build_summary(run([record("a")], events))["alerts"]
    assert (alerts["fired"], alerts["resolved"]) == (2, 1)
    assert [a["alert_id"] for a in alerts["still_firing"]] == ["a2"]
    assert alerts["changes"][0]["scope"] == {"model_id": "code"}


def test_scaling_actions_in_order_counted_by_kind_with_overdue() -> None:
    up = action("scale_up", target=2)
    overdue = ScalingActionOverdue(source="monitor", action_id=up.action_id, model_id="code", region="us-east-1",
                                   requested_at=T0, waited_s=60.0)  # fmt: skip
    events = [seen(30, action("preload", "conv")), seen(10, up), seen(80, overdue), seen(81, overdue)]
    scaling = build_summary(run([record("a")], events))["scaling"]
    assert [a["kind"] for a in scaling["actions"]] == ["scale_up", "preload"]
    assert scaling["by_kind"] == {"preload": 1, "scale_up": 1}
    assert scaling["overdue"] == 1
    assert (scaling["actions"][0]["current"], scaling["actions"][0]["target"]) == (0, 2)


def test_utilisation_per_server_and_fleet() -> None:
    def metrics(server: str, utilization: float) -> ServerMetricsReported:
        return ServerMetricsReported(source="monitor", server_id=server, region="us-east-1", gpu_type="a100",
                                     window_s=10.0, utilization=utilization, utilization_derived=True)  # fmt: skip

    events = [seen(1, metrics("s1", 0.2)), seen(2, metrics("s1", 0.6)), seen(3, metrics("s2", 0.7))]
    util = build_summary(run([record("a")], events))["utilization"]
    assert util["servers"]["s1"] == {"region": "us-east-1", "gpu_type": "a100", "samples": 2, "mean": 0.4,
                                     "max": 0.6, "derived": True}  # fmt: skip
    assert util["fleet_mean"] == 0.5
    assert util["derived"] == "all"


def test_redelivered_events_are_counted_once() -> None:
    twice = seen(5, allocated("s1", 1.0))
    events, dropped = unique_events([twice, twice, seen(1, allocated("s2", 1.0))])
    assert dropped == 1
    assert [e.event.server_id for e in events] == ["s2", "s1"]  # type: ignore[attr-defined]
    summary = build_summary(run([record("a")], [twice, twice]))
    assert summary["allocations"]["servers_started"] == 1
    assert any("delivered twice" in note for note in summary["notes"])


def test_a_run_with_no_ok_request_and_no_event_has_nulls_and_notes() -> None:
    summary = build_summary(run([record("a", "rejected", reason="no capacity")], []))
    assert summary["latency"]["p95_ms"] is None
    assert summary["latency"]["p95_meets_target"] is None
    assert summary["batching"] is None
    assert summary["utilization"] is None
    assert summary["cost"]["reported"] is None
    assert summary["cost"]["measured"]["per_1k_tokens"] is None
    assert summary["requests"]["counts_add_up"] is True
    assert len(summary["notes"]) >= 5
    assert summary["notes"][0] == "emulated GPUs"


@given(st.lists(st.sampled_from(["ok", "rejected", "failed", None]), max_size=60))
def test_known_statuses_always_add_up(statuses: list[str | None]) -> None:
    records = [record(f"r{i}", status) for i, status in enumerate(statuses)]
    req = build_summary(run(records))["requests"]
    assert req["counts_add_up"] is True
    assert req["sent"] == len(statuses)
    assert req["missing"] == statuses.count(None)
    assert sum(m["sent"] for m in req["by_model"].values()) == len(statuses)


def test_the_run_ends_at_its_last_measured_instant() -> None:
    late = run([record("a", sent=5.0, latency=200.0)], [seen(150, allocated("s1", 1.0))])
    assert run_end_s(late) == 205.0  # the last result, after 5 + 60 + 40 s of send and drain
    assert run_end_s(run([], [seen(3, allocated("s1", 1.0))], send_wall_s=0, drain_wall_s=0)) == 3.0
    assert plot_bin_s(600) == 10.0
    assert plot_bin_s(60) == 3.0
    assert plot_bin_s(0) == 1.0


@given(st.lists(st.floats(0, 100, allow_nan=False), max_size=40), st.floats(0.5, 30))
def test_sliding_peak_matches_counting_every_window(times: list[float], window: float) -> None:
    brute = max((sum(1 for u in times if t <= u < t + window) for t in times), default=0)
    assert peak_in_window(times, window) == brute
