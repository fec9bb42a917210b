"""Single- and multi-region plans: cost and average latency of serving a model from a set of regions.

Each user region is served by the nearest region of the plan. A request's latency is the model's
serving latency (queueing + batching + inference, as the router measures it) plus the round trip
between the user's region and the serving region.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

from services.cost.domain.pricing import HOURS_PER_MONTH
from services.cost.domain.recommendation import Recommendation

# Round-trip times in milliseconds between regions: rounded medians of public inter-region
# measurements (cloudping.co style, 2024-2025), symmetric. 10 ms inside a region covers the
# client -> load balancer -> router hops.
LATENCY_MS: Mapping[frozenset[str], float] = {
    frozenset({"us-east-1"}): 10.0,
    frozenset({"us-west-2"}): 10.0,
    frozenset({"eu-west-1"}): 10.0,
    frozenset({"ap-southeast-1"}): 10.0,
    frozenset({"us-east-1", "us-west-2"}): 65.0,
    frozenset({"us-east-1", "eu-west-1"}): 75.0,
    frozenset({"us-east-1", "ap-southeast-1"}): 215.0,
    frozenset({"us-west-2", "eu-west-1"}): 130.0,
    frozenset({"us-west-2", "ap-southeast-1"}): 165.0,
    frozenset({"eu-west-1", "ap-southeast-1"}): 170.0,
}
UNKNOWN_RTT_MS = 300.0  # a pair the table lacks: assume a long intercontinental hop
DEFAULT_LATENCY_REQUIREMENT_MS = 2000.0


def rtt_ms(user_region: str, serving_region: str, table: Mapping[frozenset[str], float] = LATENCY_MS) -> float:
    """Round trip between a user region and a serving region."""
    return table.get(frozenset({user_region, serving_region}), UNKNOWN_RTT_MS)


@dataclass(frozen=True)
class PlanInputs:
    """What a model's plans depend on: demand by user region, prices and capacity by serving region."""

    demand_per_hour: Mapping[str, float]  # requests per hour by user region
    gpu_price_per_hour: Mapping[str, float]  # serving region -> $ per GPU hour
    egress_per_gb: Mapping[str, float]  # serving region -> $ per GB out
    serving_ms: float
    requests_per_gpu_hour: float
    gb_per_1k_requests: float = 0.004  # ~4 KB of completion and headers per request


@dataclass(frozen=True)
class RegionPlan:
    """Serving one model from `regions`: GPUs per region, $ per hour, latency per request."""

    regions: tuple[str, ...]
    gpus: dict[str, int]
    cost_per_hour: float
    avg_latency_ms: float
    max_latency_ms: float
    meets_requirement: bool


def plan_for(regions: Sequence[str], inputs: PlanInputs, requirement_ms: float) -> RegionPlan:
    """Cost and latency of serving from `regions`; each region runs at least one GPU."""
    routed = dict.fromkeys(regions, 0.0)
    weighted = worst = 0.0
    for user, demand in inputs.demand_per_hour.items():
        nearest = min(regions, key=lambda s: (rtt_ms(user, s), s))
        routed[nearest] += demand
        latency = inputs.serving_ms + rtt_ms(user, nearest)
        weighted += demand * latency
        worst = max(worst, latency)
    total = sum(inputs.demand_per_hour.values())
    gpus = {s: max(1, math.ceil(routed[s] / inputs.requests_per_gpu_hour - 1e-9)) for s in regions}
    cost = sum(
        gpus[s] * inputs.gpu_price_per_hour[s] + routed[s] / 1000 * inputs.gb_per_1k_requests * inputs.egress_per_gb[s]
        for s in regions
    )
    average = weighted / total if total > 0 else inputs.serving_ms
    return RegionPlan(tuple(regions), gpus, round(cost, 6), round(average, 3), worst, average <= requirement_ms)


def region_plans(inputs: PlanInputs, requirement_ms: float = DEFAULT_LATENCY_REQUIREMENT_MS) -> list[RegionPlan]:
    """Every single region and every combination, cheapest first (ties: lower latency, fewer regions)."""
    candidates = sorted(inputs.gpu_price_per_hour)
    plans = [
        plan_for(combo, inputs, requirement_ms)
        for size in range(1, len(candidates) + 1)
        for combo in combinations(candidates, size)
    ]
    return sorted(plans, key=lambda p: (p.cost_per_hour, p.avg_latency_ms, len(p.regions)))


def cheapest_meeting(plans: Sequence[RegionPlan]) -> RegionPlan | None:
    """The cheapest plan whose average latency meets the requirement; None when none does."""
    return next(
        (p for p in sorted(plans, key=lambda p: (p.cost_per_hour, p.avg_latency_ms)) if p.meets_requirement), None
    )


def _row(plan: RegionPlan) -> dict[str, object]:
    return {
        "regions": list(plan.regions),
        "gpus": plan.gpus,
        "cost_per_hour": plan.cost_per_hour,
        "avg_latency_ms": plan.avg_latency_ms,
        "meets_requirement": plan.meets_requirement,
    }


def region_plan_recommendation(
    model_id: str, current_regions: Sequence[str], inputs: PlanInputs, requirement_ms: float
) -> Recommendation | None:
    """Recommend the cheapest plan meeting the requirement when it differs from where the model runs.

    The current plan is priced with the same model as the alternatives, so the savings compare
    like with like. A current plan that misses the requirement is worth changing even at a cost.
    """
    plans = region_plans(inputs, requirement_ms)
    best = cheapest_meeting(plans)
    known = sorted(r for r in current_regions if r in inputs.gpu_price_per_hour)
    if best is None or not known or sorted(best.regions) == known:
        return None
    current = plan_for(known, inputs, requirement_ms)
    per_hour = current.cost_per_hour - best.cost_per_hour
    if per_hour <= 0 and current.meets_requirement:
        return None
    return Recommendation(
        kind="region_plan",
        key=f"region_plan:{model_id}",
        summary=(
            f"{model_id}: serve from {'+'.join(best.regions)} (${best.cost_per_hour:.2f}/h, "
            f"{best.avg_latency_ms:.0f} ms average) instead of {'+'.join(known)} "
            f"(${current.cost_per_hour:.2f}/h, {current.avg_latency_ms:.0f} ms); requirement {requirement_ms:.0f} ms"
        ),
        savings_per_month=round(per_hour * HOURS_PER_MONTH, 2),
        action={"regions": list(best.regions), "gpus": best.gpus},
        evidence={
            "requirement_ms": requirement_ms,
            "current": _row(current),
            "best": _row(best),
            "alternatives": [_row(p) for p in plans],
            "demand_per_hour": dict(inputs.demand_per_hour),
            "serving_ms": inputs.serving_ms,
        },
        model_id=model_id,
    )
