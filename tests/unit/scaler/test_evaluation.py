"""The evaluation's pure steps: forecasts for every model-region, and the planner's view of them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.scaler.domain.planner import PlanSettings, plan_model
from services.scaler.domain.policy import POLICIES
from services.scaler.domain.tiers import Tier
from services.scaler.settings import ScalerSettings
from services.scaler.use_cases.evaluation import Snapshot, forecast_all, forecast_event, region_states

NOW = datetime(2026, 11, 27, 12, 0, 5, tzinfo=UTC)
SETTINGS = ScalerSettings(bucket_s=10, day_buckets=6, week_buckets=12, history_buckets=60, horizon_buckets=6,
                          policy="aggressive")  # fmt: skip


def snapshot(**kw) -> Snapshot:
    current = int(NOW.timestamp() // 10)
    counts = {("m", "us-east-1"): {b: 50.0 for b in range(current - 30, current)}}  # 18,000 requests/hour
    base = {"counts": counts, "last_requests": {}, "placements": {("m", "us-east-1"): (2, NOW - timedelta(hours=1))},
            "utilizations": {}, "pressures": {}, "pending": set(), "last_actions": {}, "tiers": {},
            "forecasted": set()}  # fmt: skip
    return Snapshot(**{**base, **kw})


def test_every_model_region_with_demand_or_instances_is_forecast():
    state = snapshot(placements={("m", "us-east-1"): (2, NOW), ("idle", "eu-west-1"): (1, NOW)})
    forecasts = forecast_all(state, SETTINGS, NOW)
    assert set(forecasts) == {("m", "us-east-1"), ("idle", "eu-west-1")}
    assert abs(forecasts[("m", "us-east-1")].values[0] - 50.0) < 2
    assert forecasts[("idle", "eu-west-1")].values.sum() == 0.0


def test_the_forecast_event_is_requests_per_hour_from_the_current_bucket():
    forecasts = forecast_all(snapshot(), SETTINGS, NOW)
    event = forecast_event(("m", "us-east-1"), forecasts[("m", "us-east-1")], SETTINGS, NOW)
    assert event.horizon_start == datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)
    assert len(event.requests_per_hour) == 6 and 17_000 < event.requests_per_hour[0] < 19_000
    assert set(event.predictors) == {"holt_winters", "seasonal", "ridge", "tsb"}


def test_a_region_with_only_a_pending_preload_stays_blocked():
    # A hot model's preload to ap-southeast-1 is in flight; that region has no demand or instance yet.
    state = snapshot(pending={("m", "ap-southeast-1")}, last_actions={("m", "eu-west-1"): NOW - timedelta(seconds=5)})
    views = region_states(state, forecast_all(state, SETTINGS, NOW), SETTINGS)
    regions = {r.region: r for r in views["m"]}
    assert regions["ap-southeast-1"].pending
    assert regions["eu-west-1"].last_action_at == NOW - timedelta(seconds=5)
    plan_settings = PlanSettings(POLICIES[SETTINGS.policy], 1000.0)
    plan = plan_model("m", views["m"], Tier.HOT, plan_settings, NOW)
    assert plan.tier is Tier.HOT
    assert {a.region for a in plan.actions} == {"us-east-1"}  # the other two are pending / cooling down


def test_capacity_is_planned_for_the_upper_quantile_not_the_mean():
    """Under-provisioning costs the SLO, over-provisioning only GPU-hours: plan for the 0.9 quantile."""
    import numpy as np

    from services.scaler.domain.ensemble import PROVISION_QUANTILE, Forecast

    mean, upper = np.full(6, 50.0), np.full(6, 80.0)
    result = Forecast(values=mean, confidence=0.9, quantiles={PROVISION_QUANTILE: upper})
    views = region_states(snapshot(), {("m", "us-east-1"): result}, SETTINGS)
    assert views["m"][0].predicted_rph == 80.0 * 3600 / SETTINGS.bucket_s
