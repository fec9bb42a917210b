"""One evaluation end to end (pure): report numbers, every recommender, and the requests they stand for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.cost.domain.applying import RecommendationRow, requests_for
from services.cost.domain.cycle import Forecast, Params, evaluate, measured_requests_per_gpu_hour, pool_forecast
from services.cost.domain.fleet import DemandWindow, Server
from services.cost.domain.pricing import Catalogue, PricingClass
from services.cost.domain.rules import pools
from services.cost.settings import CostSettings, RecommendationSource
from shared.events import (
    COST_REPORTS,
    SCALING_ACTIONS,
    CapacityChangeRequested,
    CostReportRequested,
    ScalingActionRequested,
)

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def busy_server(region="us-east-1", util=0.85, model="m1", gpus=10) -> Server:
    return Server(f"s-{region}", region, "a100_80gb", gpus, PricingClass.ON_DEMAND, 0.0, (model,), util, None)


def window(region: str, requests: int, latency: float | None = 400.0) -> DemandWindow:
    return DemandWindow("m1", region, NOW - timedelta(hours=1), NOW, requests, requests * 100, latency)


def test_busy_pool_with_forecast_gets_rules_and_the_optimal_mix():
    forecast = Forecast("m1", "us-east-1", NOW, (28_800.0,) * 24)  # 10 GPUs at 3,600 x 0.8
    result = evaluate([busy_server()], [window("us-east-1", 1000)], [forecast], Catalogue(), Params())
    assert result.cost.total == pytest.approx(41.0)
    assert result.per_1k_tokens == {"m1": pytest.approx(41.0 / 100)}  # 100,000 tokens in the hour
    kinds = {r.kind: r for r in result.recommendations}
    assert set(kinds) == {"spot", "reserved", "capacity_mix"}
    mix = kinds["capacity_mix"]
    assert mix.action == {"reserved": 3, "on_demand_max": 0, "spot_max": 7}
    assert mix.evidence["savings_vs_rules_per_month"] == pytest.approx((22.14 - 17.22) * 730)


def test_settings_choose_the_recommenders():
    only_rules = CostSettings(recommendations=RecommendationSource.RULES).params()
    forecast = Forecast("m1", None, NOW, (28_800.0,) * 24)
    result = evaluate([busy_server()], [], [forecast], Catalogue(), only_rules)
    assert {r.kind for r in result.recommendations} == {"spot", "reserved"}
    assert CostSettings().params().spot_cap == 0.7


def test_far_away_users_get_a_regional_plan():
    # Users in ap-southeast-1 only, served from us-east-1 at 1,900 + 215 ms > 2,000: move the model.
    servers = [busy_server(util=0.5)]
    result = evaluate(servers, [window("ap-southeast-1", 1000, 1900.0)], [], Catalogue(), Params())
    plans = [r for r in result.recommendations if r.kind == "region_plan"]
    assert len(plans) == 1 and plans[0].action["regions"] == ["ap-southeast-1"]
    assert plans[0].evidence["current"]["meets_requirement"] is False
    every = result.region_plans["m1"]
    assert len(every) == 15  # 4 single regions + 11 combinations, cheapest first
    assert [p.cost_per_hour for p in every] == sorted(p.cost_per_hour for p in every)


def test_measured_capacity_and_pool_share_of_a_forecast():
    servers = [
        Server("a", "us-east-1", "a100_80gb", 2, PricingClass.SPOT, 0.0, ("m1",), 0.5, 10.0),
        Server("b", "eu-west-1", "a100_80gb", 2, PricingClass.SPOT, 0.0, ("m1",), 0.02, 1.0),  # too idle to measure
    ]
    # 10 req/s at half of 2 GPUs: one busy GPU serves 36,000 req/h
    assert measured_requests_per_gpu_hour(servers, 1.0) == pytest.approx(36_000.0)
    us = next(p for p in pools(servers) if p.region == "us-east-1")
    assert pool_forecast(us, servers, [Forecast("m1", None, NOW, (100.0, 200.0))]) == [50.0, 100.0]
    assert pool_forecast(us, servers, [Forecast("m1", "us-east-1", NOW, (100.0,))]) == [100.0]
    both = [Forecast("m1", None, NOW, (100.0,)), Forecast("m1", "us-east-1", NOW, (70.0,))]
    assert pool_forecast(us, servers, both) == [70.0]  # the regional forecast, not both added


def test_settings_read_their_prefix(monkeypatch):
    monkeypatch.setenv("LLMFLEET_COST_REPORT_INTERVAL_S", "12.5")
    monkeypatch.setenv("LLMFLEET_COST_RECOMMENDATIONS", "optimal")
    settings = CostSettings()
    assert settings.report_interval_s == 12.5 and settings.db_schema == "cost"
    assert settings.params().use_rules is False and settings.params().use_optimal is True


def test_new_events_travel_on_their_topics():
    report = COST_REPORTS.adapter().validate_json(CostReportRequested(source="t", request_id="r").model_dump_json())
    assert isinstance(report, CostReportRequested)
    change = CapacityChangeRequested(
        source="t",
        request_id="q",
        recommendation_id="spot-1",
        region="us-east-1",
        gpu_type="a100_80gb",
        changes={"on_demand": -2, "spot": 2},
        reason="test",
    )
    assert SCALING_ACTIONS.adapter().validate_json(change.model_dump_json()) == change


def row(kind: str, action: dict, evidence: dict | None = None, model=None) -> RecommendationRow:
    return RecommendationRow(f"{kind}-abc", kind, "us-east-1", "a100_80gb", model, action, evidence or {})


@pytest.mark.parametrize(
    ("kind", "action", "evidence", "changes", "months"),
    [
        ("spot", {"convert": {"from": "on_demand", "to": "spot", "gpus": 7}}, {}, {"on_demand": -7, "spot": 7}, None),
        (
            "reserved",
            {"convert": {"from": "on_demand", "to": "reserved", "gpus": 6}},
            {"commitment_months": 12},
            {"on_demand": -6, "reserved": 6},
            12,
        ),
        ("rightsize", {"release": {"on_demand": 3, "spot": 0}, "gpus_after": 7}, {}, {"on_demand": -3}, None),
        (
            "capacity_mix",
            {"reserved": 3, "on_demand_max": 0, "spot_max": 7},
            {"gpus": {"on_demand": 10, "spot": 0, "reserved": 0}},
            {"reserved": 3, "on_demand": -10, "spot": 7},
            None,
        ),
    ],
)
def test_pool_recommendations_become_capacity_change_requests(kind, action, evidence, changes, months):
    (event,) = requests_for(row(kind, action, evidence), "req-1", "cost", NOW)
    assert isinstance(event, CapacityChangeRequested)
    assert event.changes == changes and event.commitment_months == months
    assert event.recommendation_id == f"{kind}-abc" and event.request_id == "req-1"


def test_region_plan_becomes_scaling_actions_per_region():
    rec = row(
        "region_plan",
        {"regions": ["ap-southeast-1"], "gpus": {"ap-southeast-1": 2}},
        {"current": {"gpus": {"us-east-1": 2}}},
        model="m1",
    )
    events = requests_for(rec, "req-2", "cost", NOW)
    assert all(isinstance(e, ScalingActionRequested) for e in events)
    assert [(e.region, e.kind.value, e.current_instances, e.target_instances) for e in events] == [
        ("ap-southeast-1", "scale_up", 0, 2),
        ("us-east-1", "scale_down", 2, 0),
    ]
