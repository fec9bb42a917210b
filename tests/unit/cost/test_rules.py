"""The three rules, with savings checked against hand-computed numbers (730 h/month, 8,760 h/year)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.cost.domain.fleet import Server
from services.cost.domain.pricing import Catalogue, PricingClass
from services.cost.domain.rules import (
    Pool,
    Thresholds,
    pools,
    reserved_rule,
    rightsize_rule,
    rule_recommendations,
    spot_rule,
)

T = Thresholds()
US_A100 = Catalogue().price("us-east-1", "a100_80gb")
EU_A100 = Catalogue().price("eu-west-1", "a100_80gb")
assert US_A100 is not None and EU_A100 is not None


def pool(od: int, spot: int = 0, reserved: int = 0, util: float | None = 0.5, region="us-east-1") -> Pool:
    return Pool(region, "a100_80gb", od, spot, reserved, util, ("m1",))


def test_spot_rule_moves_on_demand_to_70_percent_spot():
    rec = spot_rule(pool(10, util=0.75), US_A100, T)
    assert rec is not None
    # 7 GPUs x (4.10 - 1.23) = 20.09 $/h; x 730 = 14,665.70 $/month
    assert rec.action == {"convert": {"from": "on_demand", "to": "spot", "gpus": 7}}
    assert rec.evidence["savings_per_hour"] == pytest.approx(20.09)
    assert rec.savings_per_month == pytest.approx(14_665.70)
    assert rec.evidence["on_demand_behind_spot"] == 3  # graceful migration: 3 on-demand stay behind 7 spot


def test_spot_rule_counts_existing_spot_and_keeps_reserved():
    # 6 on-demand, 2 spot, 2 reserved: target 7 spot -> move 5; 5 x 2.87 = 14.35 $/h -> 10,475.50 $/month
    rec = spot_rule(pool(6, 2, 2, util=0.7), US_A100, T)
    assert rec is not None
    assert rec.action["convert"]["gpus"] == 5
    assert rec.savings_per_month == pytest.approx(10_475.50)
    assert rec.evidence["on_demand_behind_spot"] == 1


def test_spot_rule_applies_the_region_multiplier():
    # eu-west-1: 7 x (4.715 - 1.4145) = 23.1035 $/h -> 16,865.555 -> 16,865.56 $/month
    rec = spot_rule(pool(10, util=0.75, region="eu-west-1"), EU_A100, T)
    assert rec is not None and rec.savings_per_month == pytest.approx(16_865.56)


@pytest.mark.parametrize(("od", "spot", "util"), [(10, 0, 0.6), (3, 7, 0.9), (10, 0, None), (0, 3, 0.9)])
def test_spot_rule_is_silent_at_or_below_the_threshold_or_at_target(od, spot, util):
    assert spot_rule(pool(od, spot, util=util), US_A100, T) is None


def test_reserved_rule_reserves_60_percent_with_yearly_savings():
    rec = reserved_rule(pool(10, util=0.85), US_A100, T)
    assert rec is not None
    # 6 GPUs x (4.10 - 2.87) = 7.38 $/h; x 8,760 = 64,648.80 $/year; x 730 = 5,387.40 $/month
    assert rec.action == {"convert": {"from": "on_demand", "to": "reserved", "gpus": 6}}
    assert rec.evidence["savings_per_year"] == pytest.approx(64_648.80)
    assert rec.savings_per_month == pytest.approx(5_387.40)
    assert rec.evidence["commitment_months"] == 12
    assert rec.evidence["commitment_cost"] == pytest.approx(150_847.20)  # 6 x 2.87 x 8,760


def test_reserved_rule_tops_up_existing_reservations():
    rec = reserved_rule(pool(8, reserved=2, util=0.9), US_A100, T)
    assert rec is not None and rec.action["convert"]["gpus"] == 4  # 6 wanted, 2 held
    assert rec.savings_per_month == pytest.approx(4 * 1.23 * 730)


@pytest.mark.parametrize(("od", "reserved", "util"), [(10, 0, 0.8), (4, 6, 0.95), (10, 0, None)])
def test_reserved_rule_is_silent_at_threshold_or_when_reserved_enough(od, reserved, util):
    assert reserved_rule(pool(od, reserved=reserved, util=util), US_A100, T) is None


def test_rightsize_rule_releases_down_to_70_percent():
    rec = rightsize_rule(pool(10, util=0.2), US_A100, T)
    assert rec is not None
    # keep 7, release 3 on-demand: 3 x 4.10 = 12.30 $/h -> 8,979.00 $/month
    assert rec.action == {"release": {"on_demand": 3, "spot": 0}, "gpus_after": 7}
    assert rec.savings_per_month == pytest.approx(8_979.00)
    assert rec.evidence["utilization_after"] == pytest.approx(0.2857, abs=1e-4)  # 0.2 x 10 / 7


def test_rightsize_releases_on_demand_then_spot_never_reserved():
    # 2 on-demand, 3 spot, 5 reserved at 0.1: keep 7, release 2 on-demand + 1 spot = 9.43 $/h -> 6,883.90
    rec = rightsize_rule(pool(2, 3, 5, util=0.1), US_A100, T)
    assert rec is not None
    assert rec.action["release"] == {"on_demand": 2, "spot": 1}
    assert rec.savings_per_month == pytest.approx(6_883.90)
    assert rightsize_rule(pool(0, 0, 10, util=0.1), US_A100, T) is None  # all reserved: nothing to save


@pytest.mark.parametrize(("od", "util"), [(10, 0.3), (1, 0.05), (10, None)])
def test_rightsize_is_silent_at_threshold_and_never_empties_a_pool(od, util):
    assert rightsize_rule(pool(od, util=util), US_A100, T) is None


def test_pools_weight_utilisation_by_gpus_and_skip_unmeasured_servers():
    servers = [
        Server("a", "us-east-1", "a100_80gb", 3, PricingClass.ON_DEMAND, 0, ("m1",), utilization=0.9),
        Server("b", "us-east-1", "a100_80gb", 1, PricingClass.SPOT, 0, ("m2",), utilization=0.5),
        Server("c", "us-east-1", "a100_80gb", 2, PricingClass.RESERVED, 0, ()),
        Server("d", "eu-west-1", "a100_80gb", 1, PricingClass.ON_DEMAND, 0, ()),
    ]
    us, eu = sorted(pools(servers), key=lambda p: p.region, reverse=True)
    assert (us.on_demand, us.spot, us.reserved, us.models) == (3, 1, 2, ("m1", "m2"))
    assert us.utilization == pytest.approx((0.9 * 3 + 0.5) / 4)
    assert eu.utilization is None


def test_busy_pool_gets_spot_and_reserved_idle_pool_gets_rightsize():
    recs = rule_recommendations([pool(10, util=0.85), pool(10, util=0.1, region="eu-west-1")], Catalogue(), T)
    assert sorted((r.kind, r.region) for r in recs) == [
        ("reserved", "us-east-1"),
        ("rightsize", "eu-west-1"),
        ("spot", "us-east-1"),
    ]


def test_recommendation_identity_is_stable_and_follows_the_action():
    first = spot_rule(pool(10, util=0.75), US_A100, T)
    again = spot_rule(pool(10, util=0.95), US_A100, T)  # evidence changed, action did not
    other = spot_rule(pool(12, util=0.75), US_A100, T)
    assert first is not None and again is not None and other is not None
    assert first.recommendation_id == again.recommendation_id
    assert first.recommendation_id != other.recommendation_id
    assert first.recommendation_id.startswith("spot-")


@given(
    od=st.integers(0, 40),
    spot=st.integers(0, 40),
    reserved=st.integers(0, 40),
    util=st.floats(0.0, 1.0),
)
def test_rules_never_overshoot_their_targets_or_touch_reserved_savings(od, spot, reserved, util):
    p = pool(od, spot, reserved, util=util)
    if p.total == 0:
        return
    for rec in rule_recommendations([p], Catalogue(), T):
        assert rec.savings_per_month > 0
        if rec.kind == "spot":
            assert spot + rec.action["convert"]["gpus"] <= 0.7 * p.total + 1e-9
        if rec.kind == "reserved":
            assert reserved + rec.action["convert"]["gpus"] <= 0.6 * p.total + 1e-9
        if rec.kind == "rightsize":
            assert rec.action["gpus_after"] >= max(reserved, 1)
            assert rec.action["gpus_after"] >= 0.7 * p.total - 1e-9
