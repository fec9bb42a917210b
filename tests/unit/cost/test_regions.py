"""Regional plans: cost and average latency per region set, and the choice at the requirement."""

from __future__ import annotations

import pytest

from services.cost.domain.regions import (
    LATENCY_MS,
    PlanInputs,
    cheapest_meeting,
    plan_for,
    region_plan_recommendation,
    region_plans,
    rtt_ms,
)


def inputs(serving_ms: float) -> PlanInputs:
    # 1,000 req/h from each of two user regions; one GPU serves 1,000 req/h; egress left out (0 GB).
    return PlanInputs(
        demand_per_hour={"us-east-1": 1000.0, "eu-west-1": 1000.0},
        gpu_price_per_hour={"us-east-1": 4.10, "eu-west-1": 4.715},
        egress_per_gb={"us-east-1": 0.09, "eu-west-1": 0.12},
        serving_ms=serving_ms,
        requests_per_gpu_hour=1000.0,
        gb_per_1k_requests=0.0,
    )


def test_latency_table_is_documented_and_symmetric():
    assert rtt_ms("us-east-1", "eu-west-1") == rtt_ms("eu-west-1", "us-east-1") == 75.0
    assert rtt_ms("us-east-1", "us-east-1") == 10.0
    assert all(value > 0 for value in LATENCY_MS.values())


def test_every_single_region_and_combination_is_priced_by_hand():
    plans = {p.regions: p for p in region_plans(inputs(1000.0))}
    assert set(plans) == {("eu-west-1",), ("us-east-1",), ("eu-west-1", "us-east-1")}
    # us-east-1 alone: 2 GPUs x 4.10; users at 10 and 75 ms -> average 1,042.5 ms
    assert plans[("us-east-1",)].cost_per_hour == pytest.approx(8.20)
    assert plans[("us-east-1",)].avg_latency_ms == pytest.approx(1042.5)
    assert plans[("eu-west-1",)].cost_per_hour == pytest.approx(9.43)
    # both: 1 GPU each (4.10 + 4.715), every user served locally at 10 ms
    both = plans[("eu-west-1", "us-east-1")]
    assert both.cost_per_hour == pytest.approx(8.815)
    assert both.avg_latency_ms == pytest.approx(1010.0)
    assert both.gpus == {"eu-west-1": 1, "us-east-1": 1}


def test_egress_is_charged_at_the_serving_regions_rate():
    priced = PlanInputs({"eu-west-1": 1000.0}, {"eu-west-1": 4.715}, {"eu-west-1": 0.12}, 500.0, 1000.0, 0.004)
    # 1 GPU x 4.715 + 1,000 req x 0.004 GB / 1,000 req x 0.12 $/GB = 4.715 + 0.00048
    assert plan_for(["eu-west-1"], priced, 2000.0).cost_per_hour == pytest.approx(4.71548)


@pytest.mark.parametrize(
    ("serving_ms", "expected"),
    [
        (1957.4, ("us-east-1",)),  # below: the cheapest single region meets 2,000 ms
        (1957.5, ("us-east-1",)),  # at: average exactly 2,000 ms counts as meeting
        (1957.6, ("eu-west-1", "us-east-1")),  # just above: only serving both regions locally meets it
        (1990.0, ("eu-west-1", "us-east-1")),  # both regions at exactly 2,000 ms
        (1990.1, None),  # nothing meets
    ],
)
def test_cheapest_plan_at_and_around_the_requirement(serving_ms, expected):
    best = cheapest_meeting(region_plans(inputs(serving_ms), requirement_ms=2000.0))
    assert (best.regions if best else None) == expected


def test_recommends_moving_to_the_cheaper_region_with_savings_and_alternatives():
    rec = region_plan_recommendation("m1", ["eu-west-1"], inputs(1957.5), 2000.0)
    assert rec is not None and rec.kind == "region_plan" and rec.model_id == "m1"
    assert rec.action == {"regions": ["us-east-1"], "gpus": {"us-east-1": 2}}
    assert rec.savings_per_month == pytest.approx((9.43 - 8.20) * 730)  # 897.90
    assert len(rec.evidence["alternatives"]) == 3


def test_no_recommendation_when_already_on_the_best_plan():
    assert region_plan_recommendation("m1", ["us-east-1"], inputs(1957.5), 2000.0) is None


def test_a_plan_missing_the_requirement_is_worth_fixing_even_at_a_cost():
    rec = region_plan_recommendation("m1", ["us-east-1"], inputs(1957.6), 2000.0)
    assert rec is not None and rec.action["regions"] == ["eu-west-1", "us-east-1"]
    assert rec.savings_per_month == pytest.approx((8.20 - 8.815) * 730)  # -448.95: it costs more
    assert rec.evidence["current"]["meets_requirement"] is False
