"""The three rule recommendations per pool (region x GPU type): spot, reserved, right-size."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from services.cost.domain.fleet import Server
from services.cost.domain.pricing import HOURS_PER_MONTH, HOURS_PER_YEAR, Catalogue, PricingClass, RegionalPrice
from services.cost.domain.recommendation import Recommendation

_EPS = 1e-9  # 0.7 x 10 is 7.000000000000001 in floats; counts must not round away a GPU


@dataclass(frozen=True)
class Thresholds:
    """The rules' triggers and targets (the issue's defaults)."""

    spot_above_utilization: float = 0.6
    spot_target_share: float = 0.7
    reserved_above_utilization: float = 0.8
    reserved_target_share: float = 0.6
    reserved_commitment_months: int = 12
    rightsize_below_utilization: float = 0.3
    rightsize_to_share: float = 0.7


@dataclass(frozen=True)
class Pool:
    """The GPUs of one GPU type in one region, counted per pricing class, and how busy they are."""

    region: str
    gpu_type: str
    on_demand: int
    spot: int
    reserved: int
    utilization: float | None
    models: tuple[str, ...] = ()

    @property
    def total(self) -> int:
        """GPUs in the pool."""
        return self.on_demand + self.spot + self.reserved


def pools(servers: Iterable[Server]) -> list[Pool]:
    """Group servers into pools; utilisation is GPU-weighted over servers that reported it."""
    groups: defaultdict[tuple[str, str], list[Server]] = defaultdict(list)
    for server in servers:
        groups[(server.region, server.gpu_type)].append(server)
    result = []
    for (region, gpu_type), members in sorted(groups.items()):
        counts = {c: sum(s.gpu_count for s in members if s.pricing_class is c) for c in PricingClass}
        measured = [s for s in members if s.utilization is not None]
        weight = sum(s.gpu_count for s in measured)
        util = sum((s.utilization or 0.0) * s.gpu_count for s in measured) / weight if weight else None
        models = tuple(sorted({m for s in members for m in s.models}))
        result.append(
            Pool(
                region,
                gpu_type,
                counts[PricingClass.ON_DEMAND],
                counts[PricingClass.SPOT],
                counts[PricingClass.RESERVED],
                util,
                models,
            )
        )
    return result


def _pool_evidence(pool: Pool, price: RegionalPrice) -> dict[str, object]:
    return {
        "utilization": round(pool.utilization or 0.0, 4),
        "gpus": {"on_demand": pool.on_demand, "spot": pool.spot, "reserved": pool.reserved},
        "price_per_gpu_hour": {"on_demand": price.on_demand, "spot": price.spot, "reserved": price.reserved},
        "models": list(pool.models),
    }


def spot_rule(pool: Pool, price: RegionalPrice, t: Thresholds) -> Recommendation | None:
    """Busy pool with little spot: move on-demand GPUs to spot up to the target share."""
    if pool.utilization is None or pool.utilization <= t.spot_above_utilization:
        return None
    target = math.floor(pool.total * t.spot_target_share + _EPS)
    move = min(target - pool.spot, pool.on_demand)
    if pool.spot / pool.total >= t.spot_target_share or move <= 0:
        return None
    per_hour = move * (price.on_demand - price.spot)
    behind = pool.on_demand - move  # on-demand GPUs that take the load when spot is interrupted
    evidence = _pool_evidence(pool, price) | {
        "spot_share": round(pool.spot / pool.total, 4),
        "target_spot_share": t.spot_target_share,
        "on_demand_behind_spot": behind,
        "savings_per_hour": round(per_hour, 6),
    }
    return Recommendation(
        kind="spot",
        key=f"spot:{pool.region}:{pool.gpu_type}",
        summary=(
            f"{pool.region} {pool.gpu_type}: utilisation {pool.utilization:.2f} > {t.spot_above_utilization}; move "
            f"{move} on-demand GPUs to spot ({pool.spot + move}/{pool.total}); {behind} on-demand GPUs stay behind "
            f"them for graceful migration on interruption"
        ),
        savings_per_month=round(per_hour * HOURS_PER_MONTH, 2),
        action={"convert": {"from": "on_demand", "to": "spot", "gpus": move}},
        evidence=evidence,
        region=pool.region,
        gpu_type=pool.gpu_type,
    )


def reserved_rule(pool: Pool, price: RegionalPrice, t: Thresholds) -> Recommendation | None:
    """Steadily busy pool: commit the target share of it as reserved GPUs."""
    if pool.utilization is None or pool.utilization <= t.reserved_above_utilization:
        return None
    move = min(math.floor(pool.total * t.reserved_target_share + _EPS) - pool.reserved, pool.on_demand)
    if move <= 0:
        return None
    per_hour = move * (price.on_demand - price.reserved)
    hours = HOURS_PER_YEAR * t.reserved_commitment_months / 12
    evidence = _pool_evidence(pool, price) | {
        "commitment_months": t.reserved_commitment_months,
        "commitment_cost": round(move * price.reserved * hours, 2),
        "savings_per_year": round(per_hour * HOURS_PER_YEAR, 2),
    }
    return Recommendation(
        kind="reserved",
        key=f"reserved:{pool.region}:{pool.gpu_type}",
        summary=(
            f"{pool.region} {pool.gpu_type}: utilisation {pool.utilization:.2f} > {t.reserved_above_utilization}; "
            f"reserve {move} GPUs for {t.reserved_commitment_months} months, saving "
            f"${per_hour * HOURS_PER_YEAR:,.2f} a year"
        ),
        savings_per_month=round(per_hour * HOURS_PER_MONTH, 2),
        action={"convert": {"from": "on_demand", "to": "reserved", "gpus": move}},
        evidence=evidence,
        region=pool.region,
        gpu_type=pool.gpu_type,
    )


def rightsize_rule(pool: Pool, price: RegionalPrice, t: Thresholds) -> Recommendation | None:
    """Idle pool: release GPUs down to the target share, on-demand first, then spot.

    Reserved GPUs are paid for whether they run or not, so releasing them saves nothing.
    """
    if pool.utilization is None or pool.utilization >= t.rightsize_below_utilization:
        return None
    keep = max(math.ceil(pool.total * t.rightsize_to_share - _EPS), 1)
    drop_od = min(pool.total - keep, pool.on_demand)
    drop_spot = min(pool.total - keep - drop_od, pool.spot)
    if drop_od + drop_spot <= 0:
        return None
    per_hour = drop_od * price.on_demand + drop_spot * price.spot
    after = pool.total - drop_od - drop_spot
    evidence = _pool_evidence(pool, price) | {
        "utilization_after": round((pool.utilization * pool.total) / after, 4),
        "savings_per_hour": round(per_hour, 6),
    }
    return Recommendation(
        kind="rightsize",
        key=f"rightsize:{pool.region}:{pool.gpu_type}",
        summary=(
            f"{pool.region} {pool.gpu_type}: utilisation {pool.utilization:.2f} < {t.rightsize_below_utilization}; "
            f"release {drop_od} on-demand and {drop_spot} spot GPUs ({pool.total} -> {after}), "
            f"saving ${per_hour * HOURS_PER_MONTH:,.2f} a month"
        ),
        savings_per_month=round(per_hour * HOURS_PER_MONTH, 2),
        action={"release": {"on_demand": drop_od, "spot": drop_spot}, "gpus_after": after},
        evidence=evidence,
        region=pool.region,
        gpu_type=pool.gpu_type,
    )


def rule_recommendations(pool_list: Iterable[Pool], catalogue: Catalogue, t: Thresholds) -> list[Recommendation]:
    """Every rule's recommendation for every pool the catalogue prices, each judged on its own."""
    found: list[Recommendation] = []
    for pool in pool_list:
        price = catalogue.price(pool.region, pool.gpu_type)
        if price is None or pool.total == 0:
            continue
        for rule in (spot_rule, reserved_rule, rightsize_rule):
            if (rec := rule(pool, price, t)) is not None:
                found.append(rec)
    return found
