"""Beyond the rules: the cheapest reserved / on-demand / spot mix for a pool's forecast demand.

A mixed-integer programme (scipy's HiGHS): one reserved count R held over the whole horizon
(a commitment cannot follow the hours), and per hour t on-demand O_t and spot S_t GPUs, with

    minimise   sum_t R*p_r + O_t*p_o + S_t*p_s
    subject to R + O_t + S_t >= ceil(D_t)                  (cover the forecast every hour)
               S_t <= cap * (R + O_t + S_t)                (interruption tolerance)
               R >= reserved already committed, all integer >= 0

The horizon stands for the commitment's typical hours; savings are scaled to a 730-hour month.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp

from services.cost.domain.pricing import HOURS_PER_MONTH, RegionalPrice
from services.cost.domain.recommendation import Recommendation
from services.cost.domain.rules import Pool, Thresholds, reserved_rule, rightsize_rule, spot_rule


@dataclass(frozen=True)
class Mix:
    """GPUs per pricing class: reserved fixed over the horizon, on-demand and spot per hour."""

    reserved: int
    on_demand: tuple[int, ...]
    spot: tuple[int, ...]

    def cost(self, price: RegionalPrice) -> float:
        """Dollars over the horizon."""
        hours = len(self.on_demand)
        return (
            self.reserved * price.reserved * hours + sum(self.on_demand) * price.on_demand + sum(self.spot) * price.spot
        )

    def spot_within(self, cap: float) -> bool:
        """True when every hour's spot share is within the interruption tolerance."""
        return all(s <= cap * (self.reserved + o + s) + 1e-9 for o, s in zip(self.on_demand, self.spot, strict=True))


def gpus_needed(
    requests_per_hour: Sequence[float], requests_per_gpu_hour: float, target_utilization: float
) -> list[int]:
    """Whole GPUs that serve each hour's forecast at the target utilisation."""
    per_gpu = requests_per_gpu_hour * target_utilization
    return [math.ceil(max(r, 0.0) / per_gpu - 1e-9) for r in requests_per_hour]


def static_mix(reserved: int, spot: int, on_demand: int, demand: Sequence[int]) -> Mix:
    """A fixed fleet over the horizon; hours it falls short are topped up on demand."""
    fleet = reserved + spot + on_demand
    return Mix(reserved, tuple(on_demand + max(d - fleet, 0) for d in demand), tuple(spot for _ in demand))


def rules_pool(pool: Pool, price: RegionalPrice, t: Thresholds) -> Pool:
    """The pool after the rules are applied in turn: reserved first, spot on what is left, right-size."""
    current = pool
    for rule in (reserved_rule, spot_rule, rightsize_rule):
        rec = rule(current, price, t)
        if rec is None:
            continue
        if "convert" in rec.action:
            n, to = rec.action["convert"]["gpus"], rec.action["convert"]["to"]
            current = Pool(
                current.region,
                current.gpu_type,
                current.on_demand - n,
                current.spot + (n if to == "spot" else 0),
                current.reserved + (n if to == "reserved" else 0),
                current.utilization,
                current.models,
            )
        else:
            drop = rec.action["release"]
            current = Pool(
                current.region,
                current.gpu_type,
                current.on_demand - drop["on_demand"],
                current.spot - drop["spot"],
                current.reserved,
                current.utilization,
                current.models,
            )
    return current


def optimal_mix(demand: Sequence[int], price: RegionalPrice, spot_cap: float, min_reserved: int = 0) -> Mix:
    """The cheapest mix that covers `demand` (GPUs per hour) with spot within `spot_cap`."""
    hours = len(demand)
    if hours == 0:
        return Mix(min_reserved, (), ())
    eye = np.eye(hours)
    ones = np.ones((hours, 1))
    cover = np.hstack([ones, eye, eye])
    cap = np.hstack([-spot_cap * ones, -spot_cap * eye, (1 - spot_cap) * eye])
    result = milp(
        c=np.concatenate([[price.reserved * hours], np.full(hours, price.on_demand), np.full(hours, price.spot)]),
        constraints=[
            LinearConstraint(cover, lb=np.asarray(demand, dtype=float), ub=np.inf),
            LinearConstraint(cap, lb=-np.inf, ub=0.0),
        ],
        integrality=np.ones(1 + 2 * hours),
        bounds=Bounds(lb=np.concatenate([[min_reserved], np.zeros(2 * hours)]), ub=np.inf),
        options={"mip_rel_gap": 1e-9, "time_limit": 10.0},
    )
    if result.x is None:  # cannot happen for this always-feasible model; all on demand is the safe answer
        return Mix(min_reserved, tuple(max(d - min_reserved, 0) for d in demand), tuple(0 for _ in demand))
    x = np.rint(result.x).astype(int)
    return Mix(int(x[0]), tuple(int(v) for v in x[1 : 1 + hours]), tuple(int(v) for v in x[1 + hours :]))


@dataclass(frozen=True)
class MixComparison:
    """Current fleet, rule-based fleet and optimal mix over the same forecast, per month."""

    current_per_month: float
    rules_per_month: float
    optimal_per_month: float
    optimal: Mix
    rules: Pool

    @property
    def savings_vs_rules_per_month(self) -> float:
        """What the optimal mix saves beyond the rules (never negative when the rules respect the cap)."""
        return round(self.rules_per_month - self.optimal_per_month, 2)

    @property
    def savings_vs_current_per_month(self) -> float:
        """What the optimal mix saves against the fleet as it is."""
        return round(self.current_per_month - self.optimal_per_month, 2)


def compare_mix(
    pool: Pool, price: RegionalPrice, demand: Sequence[int], spot_cap: float, t: Thresholds
) -> MixComparison:
    """Solve the optimal mix and price it against the current fleet and the rules' fleet."""
    ruled = rules_pool(pool, price, t)
    rules = static_mix(ruled.reserved, ruled.spot, ruled.on_demand, demand)
    current = static_mix(pool.reserved, pool.spot, pool.on_demand, demand)
    best = optimal_mix(demand, price, spot_cap, min_reserved=pool.reserved)
    # The rules' fleet is one feasible point of the programme; keep it if the solver's gap ever loses to it.
    if rules.spot_within(spot_cap) and rules.cost(price) < best.cost(price):
        best = rules
    scale = HOURS_PER_MONTH / max(len(demand), 1)
    return MixComparison(
        current_per_month=round(current.cost(price) * scale, 2),
        rules_per_month=round(rules.cost(price) * scale, 2),
        optimal_per_month=round(best.cost(price) * scale, 2),
        optimal=best,
        rules=ruled,
    )


def mix_recommendation(pool: Pool, comparison: MixComparison, min_savings_per_month: float) -> Recommendation | None:
    """Recommend the optimal mix when it saves at least `min_savings_per_month` against today's fleet."""
    if comparison.savings_vs_current_per_month < max(min_savings_per_month, 0.01):
        return None
    best = comparison.optimal
    action = {"reserved": best.reserved, "on_demand_max": max(best.on_demand), "spot_max": max(best.spot)}
    return Recommendation(
        kind="capacity_mix",
        key=f"capacity_mix:{pool.region}:{pool.gpu_type}",
        summary=(
            f"{pool.region} {pool.gpu_type}: reserve {best.reserved}, buy up to {action['on_demand_max']} on demand "
            f"and {action['spot_max']} spot per hour; ${comparison.savings_vs_current_per_month:,.2f}/month below "
            f"today, ${comparison.savings_vs_rules_per_month:,.2f}/month below the rules"
        ),
        savings_per_month=comparison.savings_vs_current_per_month,
        action=action,
        evidence={
            "gpus": {"on_demand": pool.on_demand, "spot": pool.spot, "reserved": pool.reserved},
            "current_per_month": comparison.current_per_month,
            "rules_per_month": comparison.rules_per_month,
            "optimal_per_month": comparison.optimal_per_month,
            "savings_vs_rules_per_month": comparison.savings_vs_rules_per_month,
            "rules_fleet": {
                "reserved": comparison.rules.reserved,
                "spot": comparison.rules.spot,
                "on_demand": comparison.rules.on_demand,
            },
            "on_demand_per_hour": list(best.on_demand),
            "spot_per_hour": list(best.spot),
        },
        region=pool.region,
        gpu_type=pool.gpu_type,
    )
