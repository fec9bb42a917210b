"""Planning one model: tier floors, preload, cold start, unload, pending and cooldown."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from services.scaler.domain.planner import PlanSettings, RegionState, cold_start, plan_model
from services.scaler.domain.policy import POLICIES, PolicyName
from services.scaler.domain.tiers import Tier
from shared.events import ActionKind

NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)
SETTINGS = PlanSettings(policy=POLICIES[PolicyName.AGGRESSIVE], requests_per_instance_hour=1000.0)


def region(name="us-east-1", **kw) -> RegionState:
    defaults = {"instances": 1, "utilization": 0.5, "predicted_rph": 500.0, "confidence": 0.9}
    return RegionState(region=name, **{**defaults, **kw})


def by_region(plan):
    return {a.region: a for a in plan.actions}


def test_a_hot_model_is_preloaded_in_all_three_regions():
    plan = plan_model("m", [region(predicted_rph=1500.0, utilization=0.5, instances=2)], Tier.WARM, SETTINGS, NOW)
    assert plan.tier is Tier.HOT
    actions = by_region(plan)
    assert set(actions) == {"eu-west-1", "ap-southeast-1"}
    assert all(a.kind is ActionKind.PRELOAD and a.target == 1 and a.priority == "high" for a in actions.values())
    assert all(a.rule == "tier_hot" for a in actions.values())


def test_a_warm_model_gets_its_two_regions_with_medium_priority():
    plan = plan_model("m", [region(predicted_rph=300.0, utilization=0.5)], None, SETTINGS, NOW)
    assert plan.tier is Tier.WARM
    assert {a.region: (a.kind, a.priority) for a in plan.actions} == {"eu-west-1": (ActionKind.PRELOAD, "medium")}


def test_predictive_preload_for_a_cold_model_expected_to_get_requests():
    state = region(instances=0, utilization=None, predicted_rph=80.0, next_hour_requests=80.0, confidence=0.85)
    action = by_region(plan_model("m", [state], None, SETTINGS, NOW))["us-east-1"]
    assert (action.kind, action.target, action.priority, action.rule) == (
        ActionKind.PRELOAD, 1, "high", "predictive_preload",
    )  # fmt: skip
    medium = plan_model("m", [region(instances=0, next_hour_requests=80.0, predicted_rph=80.0, confidence=0.7)],
                        None, SETTINGS, NOW)  # fmt: skip
    assert medium.actions[0].priority == "medium"
    assert not plan_model("m", [region(instances=0, next_hour_requests=40.0, predicted_rph=40.0)], None, SETTINGS,
                          NOW).actions  # fmt: skip


def test_a_cold_model_idle_for_thirty_minutes_is_unloaded():
    idle = region(instances=1, predicted_rph=0.0, last_request_at=NOW - timedelta(minutes=31))
    action = plan_model("m", [idle], Tier.COLD, SETTINGS, NOW).actions[0]
    assert (action.kind, action.target, action.rule) == (ActionKind.UNLOAD, 0, "cold_idle")
    busy = region(instances=1, predicted_rph=10.0, last_request_at=NOW - timedelta(minutes=5))
    assert not plan_model("m", [busy], Tier.COLD, SETTINGS, NOW).actions


def test_a_warm_model_is_never_unloaded_from_its_tier_regions():
    idle = region(instances=1, predicted_rph=150.0, last_request_at=NOW - timedelta(hours=3), utilization=0.0)
    plan = plan_model("m", [idle, region("eu-west-1", predicted_rph=0.0)], Tier.WARM, SETTINGS, NOW)
    assert all(a.kind is not ActionKind.UNLOAD for a in plan.actions)


def test_pending_action_or_cooldown_blocks_new_actions():
    busy = {"utilization": 0.95, "predicted_rph": 5000.0}
    assert plan_model("m", [region(pending=True, **busy)], Tier.HOT, SETTINGS, NOW).actions[0].region != "us-east-1"
    recent = region(last_action_at=NOW - timedelta(minutes=4), **busy)
    assert "us-east-1" not in by_region(plan_model("m", [recent], Tier.HOT, SETTINGS, NOW))
    later = region(last_action_at=NOW - timedelta(minutes=5), **busy)
    assert by_region(plan_model("m", [later], Tier.HOT, SETTINGS, NOW))["us-east-1"].kind is ActionKind.SCALE_UP


def test_every_action_explains_itself():
    action = plan_model("m", [region(utilization=0.91, predicted_rph=2500.0, instances=1)], Tier.HOT, SETTINGS,
                        NOW).actions  # fmt: skip
    up = next(a for a in action if a.region == "us-east-1")
    reason = up.reason()
    for part in ("rule=utilization_high", "policy=aggressive", "tier=hot", "utilization=0.91", "forecast_rph=2500.0",
                 "confidence=0.90", "instances=1->3", "required=2.5", "capacity_rph=1000"):  # fmt: skip
        assert part in reason
    assert up.inputs() == {"utilization": 0.91, "forecast_rph": 2500.0, "confidence": 0.9, "required": 2.5,
                           "capacity_rph": 1000.0, "model_rph": 2500.0}  # fmt: skip


def test_cold_start_preloads_once_with_high_priority():
    action = cold_start("m", "eu-west-1", instances=0, pending=False, policy="aggressive")
    assert action is not None and (action.kind, action.target, action.priority) == (ActionKind.PRELOAD, 1, "high")
    assert cold_start("m", "eu-west-1", instances=0, pending=True, policy="aggressive") is None
    assert cold_start("m", "eu-west-1", instances=2, pending=False, policy="aggressive") is None


def test_an_unsure_forecast_changes_no_tier():
    unsure = region(predicted_rph=5000.0, utilization=0.5, confidence=0.3)
    assert plan_model("m", [unsure], None, SETTINGS, NOW).tier is Tier.COLD
    assert plan_model("m", [unsure], Tier.WARM, SETTINGS, NOW).tier is Tier.WARM
    assert plan_model("m", [replace(unsure, confidence=0.7)], Tier.WARM, SETTINGS, NOW).tier is Tier.HOT
