"""Every alert rule: boundaries, for-duration, hysteresis, and fire-once / resolve-once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.monitor.domain.alerts import AlertStatus, Phase, alert_id, evaluate, scope_key
from services.monitor.domain.rules import DEFAULT_RULES, AlertRule, Direction, breached, cleared, control_plane_rules
from shared.events import AlertState

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
ALL_RULES = DEFAULT_RULES + control_plane_rules(target_down_after=3, lag_threshold=1000)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def bad(rule: AlertRule, by: float = 0.0) -> float:
    return rule.threshold + by if rule.direction is Direction.ABOVE else rule.threshold - by


def run(rule: AlertRule, values: list[tuple[float, float]]) -> tuple[AlertStatus, list[AlertState]]:
    status, changes = AlertStatus(), []
    for seconds, value in values:
        status, change = evaluate(rule, value, at(seconds), status)
        if change is not None:
            changes.append(change.state)
    return status, changes


def test_the_issue_thresholds_are_the_defaults():
    thresholds = {r.name: (r.threshold, r.severity.value) for r in DEFAULT_RULES}
    assert thresholds["gpu_utilization_high"] == (0.9, "high")
    assert thresholds["gpu_utilization_low"][0] == 0.2
    assert thresholds["latency_p95_high"] == (3000, "high")
    assert thresholds["latency_p95_critical"] == (5000, "critical")
    assert thresholds["error_rate_high"] == (0.05, "high")
    assert thresholds["error_rate_critical"] == (0.10, "critical")
    assert thresholds["cost_per_token_high"] == (0.001, "high")
    assert thresholds["cost_per_token_critical"] == (0.002, "critical")
    assert thresholds["queue_depth_high"] == (100, "high")
    assert thresholds["queue_depth_critical"] == (500, "critical")


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda r: r.name)
def test_boundary_the_threshold_itself_breaches_and_just_inside_does_not(rule):
    assert breached(rule, rule.threshold)
    assert not breached(rule, bad(rule, -max(1e-9, rule.threshold * 1e-6)))


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda r: r.name)
def test_fires_only_after_the_for_duration(rule):
    if rule.for_s == 0:
        _, changes = run(rule, [(0, bad(rule))])
        assert changes == [AlertState.FIRING]
        return
    status, changes = run(rule, [(0, bad(rule)), (rule.for_s - 1, bad(rule))])
    assert (status.phase, changes) == (Phase.PENDING, [])
    status, changes = run(rule, [(0, bad(rule)), (rule.for_s - 1, bad(rule)), (rule.for_s, bad(rule))])
    assert (status.phase, changes) == (Phase.FIRING, [AlertState.FIRING])


@pytest.mark.parametrize("rule", [r for r in ALL_RULES if r.for_s > 0], ids=lambda r: r.name)
def test_a_breach_that_recovers_before_the_for_duration_never_fires(rule):
    status, changes = run(
        rule, [(0, bad(rule)), (rule.for_s / 2, bad(rule, -rule.hysteresis - 1)), (rule.for_s, bad(rule))]
    )
    assert changes == [] and status.phase is Phase.PENDING and status.since == at(rule.for_s)


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda r: r.name)
def test_hysteresis_keeps_it_firing_inside_the_band_then_resolves_once(rule):
    inside_band = bad(rule, -rule.hysteresis / 2) if rule.hysteresis else rule.threshold
    past_band = bad(rule, -rule.hysteresis - abs(rule.threshold) * 0.01 - 1e-6)
    f = rule.for_s
    status, changes = run(rule, [(0, bad(rule)), (f, bad(rule)), (f + 1, inside_band), (f + 2, bad(rule, 1))])
    assert changes == [AlertState.FIRING] and status.phase is Phase.FIRING
    status, changes = run(rule, [(0, bad(rule)), (f, bad(rule)), (f + 1, past_band), (f + 2, past_band)])
    assert changes == [AlertState.FIRING, AlertState.RESOLVED] and status.phase is Phase.OK


def test_the_resolution_carries_the_episode_of_the_firing():
    rule = AlertRule("r", DEFAULT_RULES[2].metric, Direction.ABOVE, 10, DEFAULT_RULES[2].severity)
    firing, change = evaluate(rule, 12, at(5), AlertStatus())
    assert change is not None and change.fired_at == at(5) and change.value == 12 and change.threshold == 10
    _, resolved = evaluate(rule, 3, at(9), firing)
    assert resolved is not None and resolved.state is AlertState.RESOLVED and resolved.fired_at == at(5)
    assert resolved.value == 3


def test_no_data_and_disabled_rules_change_nothing():
    rule = DEFAULT_RULES[0]
    pending = AlertStatus(Phase.PENDING, at(0), None, 0.95)
    assert evaluate(rule, None, at(999), pending) == (pending, None)
    disabled = AlertRule(rule.name, rule.metric, rule.direction, rule.threshold, rule.severity, enabled=False)
    assert evaluate(disabled, 1.0, at(999), AlertStatus()) == (AlertStatus(), None)


def test_alert_ids_are_stable_per_scope_and_episode():
    assert scope_key({"region": "eu", "model_id": "m"}) == "model_id=m,region=eu"
    assert alert_id("r", {"b": "2", "a": "1"}, T0) == alert_id("r", {"a": "1", "b": "2"}, T0)
    assert alert_id("r", {"a": "1"}, T0) != alert_id("r", {"a": "1"}, at(1))


def test_cleared_needs_the_whole_band():
    rule = AlertRule("r", DEFAULT_RULES[0].metric, Direction.BELOW, 0.2, DEFAULT_RULES[0].severity, hysteresis=0.05)
    assert not cleared(rule, 0.25) and cleared(rule, 0.2501)


@given(
    st.sampled_from(ALL_RULES),
    st.lists(st.tuples(st.floats(0, 120), st.floats(-10, 10_000, allow_nan=False)), max_size=40),
)
def test_firings_and_resolutions_alternate_and_follow_the_value(rule, steps):
    status, seconds, previous_state = AlertStatus(), 0.0, AlertState.RESOLVED
    for gap, value in steps:
        seconds += gap
        status, change = evaluate(rule, value, at(seconds), status)
        if change is None:
            continue
        assert change.state is not previous_state  # never fires twice, never resolves twice
        assert breached(rule, value) if change.state is AlertState.FIRING else cleared(rule, value)
        previous_state = change.state
    assert (status.phase is Phase.FIRING) == (previous_state is AlertState.FIRING)
