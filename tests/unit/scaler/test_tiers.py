"""Tier boundaries, preload priorities, idle unload and tier hysteresis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.scaler.domain.tiers import (
    TIER_PLANS,
    Tier,
    idle_for_unload,
    min_instances,
    preload_priority,
    tier_for,
    with_hysteresis,
)

NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("rph", "tier"),
    [(0.0, Tier.COLD), (100.0, Tier.COLD), (100.01, Tier.WARM), (1000.0, Tier.WARM), (1000.01, Tier.HOT)],
)
def test_tier_boundaries(rph, tier):
    assert tier_for(rph) is tier


def test_tier_plans_hold_the_issue_replicas_and_regions():
    assert TIER_PLANS[Tier.HOT].replicas == 3
    assert set(TIER_PLANS[Tier.HOT].regions) == {"us-east-1", "eu-west-1", "ap-southeast-1"}
    assert TIER_PLANS[Tier.WARM].replicas == 2
    assert set(TIER_PLANS[Tier.WARM].regions) == {"us-east-1", "eu-west-1"}
    assert TIER_PLANS[Tier.COLD].replicas == 0


def test_min_instances_follow_the_tier_regions():
    assert min_instances(Tier.HOT, "ap-southeast-1") == 1
    assert min_instances(Tier.WARM, "ap-southeast-1") == 0
    assert min_instances(Tier.COLD, "us-east-1") == 0


@pytest.mark.parametrize(
    ("requests", "confidence", "priority"),
    [(50.0, 0.99, None), (51.0, 0.81, "high"), (51.0, 0.8, "medium"), (51.0, 0.61, "medium"), (51.0, 0.6, None)],
)
def test_preload_priority(requests, confidence, priority):
    assert preload_priority(requests, confidence) == priority


def test_idle_unload_after_thirty_minutes_without_requests():
    assert idle_for_unload(NOW - timedelta(minutes=30), None, NOW)
    assert not idle_for_unload(NOW - timedelta(minutes=29), None, NOW)
    # Just loaded: the idle clock starts at the load, not at the last request long ago.
    assert not idle_for_unload(NOW - timedelta(hours=5), NOW - timedelta(minutes=1), NOW)
    assert not idle_for_unload(None, None, NOW)
    assert idle_for_unload(NOW - timedelta(seconds=61), None, NOW, idle=timedelta(seconds=60))


def test_tier_hysteresis_holds_a_tier_until_demand_is_clearly_lower():
    assert with_hysteresis(900.0, Tier.HOT) is Tier.HOT  # 900 > 0.8 x 1000
    assert with_hysteresis(700.0, Tier.HOT) is Tier.WARM
    assert with_hysteresis(90.0, Tier.WARM) is Tier.WARM
    assert with_hysteresis(70.0, Tier.WARM) is Tier.COLD
    assert with_hysteresis(1500.0, Tier.COLD) is Tier.HOT  # upwards at once
    assert with_hysteresis(50.0, None) is Tier.COLD
