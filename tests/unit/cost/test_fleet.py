"""Fleet cost per hour (every breakdown) and cost per 1,000 tokens, on a hand-priced fleet."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.cost.domain.fleet import IDLE, DemandWindow, Server, cost_per_1k_tokens, fleet_cost, rate_per_hour
from services.cost.domain.pricing import Catalogue, PricingClass

NOON = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def fleet() -> list[Server]:
    return [
        # 2 x a100 on demand in us-east-1: 2 x 4.10 = 8.20
        Server("s1", "us-east-1", "a100_80gb", 2, PricingClass.ON_DEMAND, 99.0, ("m1",)),
        # 1 x v100 spot in eu-west-1: 0.74 x 1.15 = 0.851, shared by two models
        Server("s2", "eu-west-1", "v100_32gb", 1, PricingClass.SPOT, 99.0, ("m1", "m2")),
        # 1 x h100 reserved, holding nothing: 5.60
        Server("s3", "us-east-1", "h100_80gb", 1, PricingClass.RESERVED, 99.0),
        # a region the catalogue does not list: the allocator's reported 3.00 stands
        Server("s4", "mars-1", "a100_80gb", 1, PricingClass.ON_DEMAND, 3.0, ("m2",)),
    ]


def test_fleet_cost_by_every_breakdown():
    cost = fleet_cost(fleet(), Catalogue())
    assert cost.total == pytest.approx(17.651)
    assert cost.by_region == pytest.approx({"us-east-1": 13.8, "eu-west-1": 0.851, "mars-1": 3.0})
    assert cost.by_gpu_type == pytest.approx({"a100_80gb": 11.2, "v100_32gb": 0.851, "h100_80gb": 5.6})
    assert cost.by_pricing_class == pytest.approx({"on_demand": 11.2, "spot": 0.851, "reserved": 5.6})
    assert cost.by_model == pytest.approx({"m1": 8.6255, "m2": 3.4255, IDLE: 5.6})
    assert cost.by_pool[("us-east-1", "a100_80gb", "on_demand")] == pytest.approx(8.2)


def test_breakdowns_add_up_to_the_total():
    cost = fleet_cost(fleet(), Catalogue())
    for breakdown in (cost.by_region, cost.by_gpu_type, cost.by_pricing_class, cost.by_model, cost.by_pool):
        assert sum(breakdown.values()) == pytest.approx(cost.total)


def test_empty_fleet_costs_nothing():
    assert fleet_cost([], Catalogue()).total == 0.0


def window(model: str, start_min: int, minutes: int, tokens: int, requests: int = 10, region="us-east-1"):
    start = NOON + timedelta(minutes=start_min)
    return DemandWindow(model, region, start, start + timedelta(minutes=minutes), requests, tokens)


def test_cost_per_1k_tokens_is_hourly_cost_over_kilotokens_per_hour():
    # m1: 300,000 tokens over one hour; its share of the fleet is $8.6255/h -> 8.6255 / 300 per 1k tokens.
    windows = [window("m1", 0, 30, 100_000), window("m1", 30, 30, 200_000), window("m2", 0, 15, 0)]
    per_1k = cost_per_1k_tokens({"m1": 8.6255, "m2": 3.4255}, windows)
    assert per_1k == {"m1": pytest.approx(8.6255 / 300)}


def test_overlapping_windows_of_replicas_count_once_in_time():
    # Two router replicas report the same half hour: 2 x 50,000 tokens in 0.5 h = 200,000 tokens/h.
    rates = rate_per_hour([window("m1", 0, 30, 50_000, 5), window("m1", 0, 30, 50_000, 7)])
    assert rates[("m1", "")] == pytest.approx((24.0, 200_000.0))


def test_rates_by_region_keep_regions_apart():
    rates = rate_per_hour([window("m1", 0, 60, 1, 100), window("m1", 0, 60, 1, 30, "eu-west-1")], by_region=True)
    assert rates[("m1", "us-east-1")][0] == pytest.approx(100.0)
    assert rates[("m1", "eu-west-1")][0] == pytest.approx(30.0)
