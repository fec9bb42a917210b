"""Cluster autoscaling rules: worked examples."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.allocator.domain.autoscaling import AutoscalingRules, PoolAction, decide, low_since

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
RULES = AutoscalingRules()


def test_scale_up_on_high_utilisation_or_many_pending():
    assert decide(0.85, 0, 100, None, NOW).action is PoolAction.SCALE_UP
    decision = decide(0.5, 101, 100, None, NOW)
    assert (decision.action, decision.gpus) == (PoolAction.SCALE_UP, 20)
    assert decide(0.8, 100, 100, None, NOW).action is PoolAction.HOLD  # thresholds are strict


def test_scale_down_only_after_ten_minutes_low():
    began = low_since(None, 0.2, NOW - timedelta(minutes=11), RULES)
    assert began == NOW - timedelta(minutes=11)
    assert low_since(began, 0.25, NOW, RULES) == began  # still the same low stretch
    decision = decide(0.2, 0, 10, began, NOW)
    assert (decision.action, decision.gpus) == (PoolAction.SCALE_DOWN, 2)
    assert decide(0.2, 0, 10, NOW - timedelta(minutes=9), NOW).action is PoolAction.HOLD
    assert low_since(began, 0.35, NOW, RULES) is None  # a busy moment resets the stretch


def test_never_scales_a_pool_below_one_gpu():
    assert decide(0.0, 0, 1, NOW - timedelta(hours=1), NOW).gpus == 0
