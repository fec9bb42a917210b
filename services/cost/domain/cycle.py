"""One evaluation of the fleet: the cost report and every recommendation, from a snapshot."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from services.cost.domain.fleet import DemandWindow, FleetCost, Server, cost_per_1k_tokens, fleet_cost, rate_per_hour
from services.cost.domain.mix import compare_mix, gpus_needed, mix_recommendation
from services.cost.domain.pricing import Catalogue
from services.cost.domain.recommendation import Recommendation
from services.cost.domain.regions import PlanInputs, RegionPlan, region_plan_recommendation, region_plans
from services.cost.domain.rules import Pool, Thresholds, pools, rule_recommendations


@dataclass(frozen=True)
class Forecast:
    """The scaler's latest forecast for a model (region None: the whole fleet)."""

    model_id: str
    region: str | None
    horizon_start: datetime
    requests_per_hour: tuple[float, ...]


@dataclass(frozen=True)
class Params:
    """The knobs of an evaluation (from settings)."""

    thresholds: Thresholds = field(default_factory=Thresholds)
    spot_cap: float = 0.7
    requests_per_gpu_hour: float = 3600.0
    target_utilization: float = 0.8
    serving_latency_ms: float = 800.0
    latency_requirement_ms: float = 2000.0
    min_mix_savings_per_month: float = 100.0
    use_rules: bool = True
    use_optimal: bool = True


@dataclass(frozen=True)
class Evaluation:
    """What a cycle found: the fleet's cost, cost per 1k tokens, and the recommendations."""

    cost: FleetCost
    per_1k_tokens: dict[str, float]
    recommendations: list[Recommendation] = field(default_factory=list)
    region_plans: dict[str, list[RegionPlan]] = field(default_factory=dict)  # per model, cheapest first


def measured_requests_per_gpu_hour(servers: Sequence[Server], fallback: float) -> float:
    """Requests one fully busy GPU serves an hour, from throughput / utilisation; else the fallback."""
    busy = [s for s in servers if (s.utilization or 0.0) >= 0.05 and (s.throughput_rps or 0.0) > 0]
    busy_gpus = sum((s.utilization or 0.0) * s.gpu_count for s in busy)
    return sum((s.throughput_rps or 0.0) * 3600 for s in busy) / busy_gpus if busy_gpus else fallback


def pool_forecast(pool: Pool, servers: Sequence[Server], forecasts: Sequence[Forecast]) -> list[float]:
    """Requests per hour the pool must serve: each model's forecast x the pool's share of its GPUs."""
    series: list[list[float]] = []
    # A model forecast for this region and for the whole fleet: the regional one is the finer, and
    # adding both would count its demand twice.
    regional = {f.model_id for f in forecasts if f.region == pool.region}
    for forecast in forecasts:
        if forecast.model_id not in pool.models or (forecast.region and forecast.region != pool.region):
            continue
        if forecast.region is None and forecast.model_id in regional:
            continue
        holders = [s for s in servers if forecast.model_id in s.models and forecast.region in (None, s.region)]
        mine = sum(s.gpu_count for s in holders if (s.region, s.gpu_type) == (pool.region, pool.gpu_type))
        share = mine / max(sum(s.gpu_count for s in holders), 1)
        series.append([r * share for r in forecast.requests_per_hour])
    if not series:
        return []
    hours = min(len(s) for s in series)  # forecasts of different horizons: the span they all cover
    return [sum(s[h] for s in series) for h in range(hours)]


def _mix_recommendations(
    pool_list: Sequence[Pool], servers: Sequence[Server], forecasts: Sequence[Forecast], cat: Catalogue, p: Params
) -> list[Recommendation]:
    found = []
    for pool in pool_list:
        price = cat.price(pool.region, pool.gpu_type)
        demand_rph = pool_forecast(pool, servers, forecasts)
        if price is None or not demand_rph:
            continue
        members = [s for s in servers if (s.region, s.gpu_type) == (pool.region, pool.gpu_type)]
        rate = measured_requests_per_gpu_hour(members, p.requests_per_gpu_hour)
        demand = gpus_needed(demand_rph, rate, p.target_utilization)
        comparison = compare_mix(pool, price, demand, p.spot_cap, p.thresholds)
        if (rec := mix_recommendation(pool, comparison, p.min_mix_savings_per_month)) is not None:
            found.append(rec)
    return found


def _plan_inputs(
    model: str, servers: Sequence[Server], windows: Sequence[DemandWindow], cat: Catalogue, p: Params
) -> PlanInputs | None:
    holders = [s for s in servers if model in s.models]
    mine = [w for w in windows if w.model_id == model]
    if not holders or not mine:
        return None
    gpu_type = Counter(s.gpu_type for s in holders).most_common(1)[0][0]
    prices = {r.region: price.on_demand for r in cat.regions if (price := cat.price(r.region, gpu_type))}
    demand = {region: rph for (_, region), (rph, _) in rate_per_hour(mine, by_region=True).items()}
    timed = [w for w in mine if w.latency_ms is not None]
    serving = sum((w.latency_ms or 0.0) * w.requests for w in timed) / max(sum(w.requests for w in timed), 1)
    return PlanInputs(
        demand_per_hour=demand,
        gpu_price_per_hour=prices,
        egress_per_gb={r.region: r.egress_per_gb for r in cat.regions},
        serving_ms=serving if timed else p.serving_latency_ms,
        requests_per_gpu_hour=measured_requests_per_gpu_hour(holders, p.requests_per_gpu_hour) * p.target_utilization,
    )


def evaluate(
    servers: Sequence[Server],
    windows: Sequence[DemandWindow],
    forecasts: Sequence[Forecast],
    catalogue: Catalogue,
    params: Params,
) -> Evaluation:
    """Price the fleet and find every recommendation the rules, the optimiser and the plans make."""
    cost = fleet_cost(servers, catalogue)
    pool_list = pools(servers)
    recs: list[Recommendation] = []
    if params.use_rules:
        recs += rule_recommendations(pool_list, catalogue, params.thresholds)
    if params.use_optimal:
        recs += _mix_recommendations(pool_list, servers, forecasts, catalogue, params)
    plans: dict[str, list[RegionPlan]] = {}
    regions_of: defaultdict[str, set[str]] = defaultdict(set)
    for server in servers:
        for model in server.models:
            regions_of[model].add(server.region)
    for model in sorted(regions_of):
        inputs = _plan_inputs(model, servers, windows, catalogue, params)
        if inputs is not None and inputs.demand_per_hour:
            plans[model] = region_plans(inputs, params.latency_requirement_ms)
            rec = region_plan_recommendation(model, sorted(regions_of[model]), inputs, params.latency_requirement_ms)
            recs += [rec] if rec else []
    return Evaluation(cost, cost_per_1k_tokens(cost.by_model, windows), recs, plans)
