"""Every scaling-policy rule, with worked examples from the issue's numbers."""

from __future__ import annotations

from dataclasses import replace

import pytest

from services.scaler.domain.policy import POLICIES, CapacityInputs, PolicyName, decide, required_capacity

AGGRESSIVE = POLICIES[PolicyName.AGGRESSIVE]
CONSERVATIVE = POLICIES[PolicyName.CONSERVATIVE]
COST = POLICIES[PolicyName.COST_OPTIMIZED]


def inputs(current=2, rph=1500.0, confidence=0.95, utilization=0.5, per_instance=1000.0, **kw) -> CapacityInputs:
    return CapacityInputs(current, rph, confidence, utilization, per_instance, **kw)


def test_policy_table_matches_the_issue():
    table = {p.name: (p.scale_up_utilization, p.scale_down_utilization, p.min_confidence, p.up_factor, p.down_factor)
             for p in POLICIES.values()}  # fmt: skip
    assert table == {
        "aggressive": (0.7, 0.3, 0.6, 2.0, 0.5),
        "conservative": (0.8, 0.2, 0.8, 1.5, 0.7),
        "cost_optimized": (0.85, 0.15, 0.9, 1.3, 0.6),
    }


def test_required_capacity_is_demand_over_per_instance_rate():
    assert required_capacity(2500.0, 1000.0) == 2.5


@pytest.mark.parametrize(
    ("policy", "utilization", "current", "target"),
    [
        (AGGRESSIVE, 0.71, 2, 4),  # above 0.7: x2.0
        (CONSERVATIVE, 0.81, 2, 3),  # above 0.8: x1.5
        (COST, 0.86, 3, 4),  # above 0.85: ceil(3 x 1.3)
    ],
)
def test_high_utilization_scales_up_by_the_policy_factor(policy, utilization, current, target):
    decision = decide(policy, inputs(current=current, utilization=utilization, rph=1000.0))
    assert decision is not None and (decision.target, decision.rule) == (target, "utilization_high")


@pytest.mark.parametrize(("policy", "utilization"), [(AGGRESSIVE, 0.7), (CONSERVATIVE, 0.8), (COST, 0.85)])
def test_utilization_at_the_threshold_does_not_scale(policy, utilization):
    assert decide(policy, inputs(utilization=utilization, rph=1500.0)) is None


def test_forecast_above_1_2x_current_scales_up_even_at_moderate_utilization():
    decision = decide(AGGRESSIVE, inputs(current=2, rph=2500.0, utilization=0.5))  # 2.5 > 2.4
    assert decision is not None and (decision.target, decision.rule) == (4, "forecast_above_capacity")
    assert decide(AGGRESSIVE, inputs(current=2, rph=2300.0, utilization=0.5)) is None  # 2.3 < 2.4


def test_scale_up_reaches_required_capacity_when_the_factor_is_not_enough():
    decision = decide(CONSERVATIVE, inputs(current=2, rph=5200.0, utilization=0.9))
    assert decision is not None and decision.target == 6  # ceil(5.2) beats ceil(2 x 1.5)


@pytest.mark.parametrize(
    ("policy", "below", "at"), [(AGGRESSIVE, 0.59, 0.6), (CONSERVATIVE, 0.79, 0.8), (COST, 0.89, 0.9)]
)
def test_confidence_must_clear_the_policy_threshold_for_forecast_driven_changes(policy, below, at):
    forecast_up = inputs(current=2, rph=5000.0, utilization=0.5)  # required 5 > 1.2 x 2, not hot
    assert decide(policy, replace(forecast_up, confidence=below)) is None
    assert decide(policy, replace(forecast_up, confidence=at)) is not None
    forecast_down = inputs(current=4, rph=1000.0, utilization=0.1)
    assert decide(policy, replace(forecast_down, confidence=below)) is None
    assert decide(policy, replace(forecast_down, confidence=at)) is not None


@pytest.mark.parametrize("policy", [AGGRESSIVE, CONSERVATIVE, COST])
def test_measured_overload_scales_up_without_a_confident_forecast(policy):
    saturated = decide(policy, inputs(current=1, rph=0.0, utilization=0.95, confidence=0.0))
    signalled = decide(policy, inputs(current=1, rph=0.0, utilization=None, confidence=0.0, pressure=1))
    assert saturated is not None and saturated.rule == "utilization_high" and saturated.target >= 2
    assert signalled is not None and signalled.rule == "utilization_high" and signalled.target >= 2


def test_low_utilization_and_low_forecast_scale_down_by_the_factor():
    decision = decide(AGGRESSIVE, inputs(current=4, rph=1000.0, utilization=0.25))  # 1.0 < 3.2
    assert decision is not None and (decision.target, decision.rule) == (2, "utilization_low")
    conservative = decide(CONSERVATIVE, inputs(current=10, rph=1000.0, utilization=0.1))
    assert conservative is not None and conservative.target == 7  # floor(10 x 0.7)


def test_scale_down_needs_both_low_utilization_and_required_below_0_8x():
    assert decide(AGGRESSIVE, inputs(current=4, rph=1000.0, utilization=0.35)) is None
    assert decide(AGGRESSIVE, inputs(current=4, rph=3300.0, utilization=0.25)) is None  # 3.3 > 3.2


def test_scale_down_never_below_required_capacity_or_one_instance():
    decision = decide(AGGRESSIVE, inputs(current=10, rph=7500.0, utilization=0.05))
    assert decision is not None and decision.target == 8  # ceil(7.5), not floor(10 x 0.5)
    assert decide(AGGRESSIVE, inputs(current=1, rph=0.0, utilization=0.0)) is None


def test_scale_down_stops_where_the_load_would_cross_the_scale_up_threshold():
    decision = decide(AGGRESSIVE, inputs(current=5, rph=100.0, utilization=0.29))
    assert decision is not None and decision.target == 3  # 2 would put 1.45 instances of load at 0.725


def test_monitor_pressure_counts_as_high_utilization():
    decision = decide(AGGRESSIVE, inputs(current=2, rph=1000.0, utilization=None, pressure=1))
    assert decision is not None and decision.rule == "utilization_high"


def test_unknown_utilization_never_scales_down():
    assert decide(AGGRESSIVE, inputs(current=4, rph=0.0, utilization=None)) is None


def test_a_region_without_instances_is_left_to_preload():
    assert decide(AGGRESSIVE, inputs(current=0, rph=50_000.0, utilization=None)) is None


def test_scale_up_is_capped_at_the_maximum():
    decision = decide(AGGRESSIVE, inputs(current=3, rph=100_000.0, utilization=0.99, max_instances=5))
    assert decision is not None and decision.target == 5
