"""How the simulated GPU hours are paid for, with the cost service's catalogue, mix and rules.

Mixed pricing: before the run, the cost service's `optimal_mix` sizes a reserved commitment per
pool (region x GPU type) for the GPUs the warm-up's last day would have needed (its `gpus_needed`
at its target utilisation). During the run each new server is reserved while the commitment has
room, else spot while the pool's spot share stays within the interruption tolerance, else on
demand. Reserved GPUs are paid whether used or not. `fleet_cost` prices servers the same way (a
test proves the twin below equal to it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from llmfleet.simulate.fleet import CLASSES
from llmfleet.simulate.options import REGIONS, Pricing
from services.cost.domain.mix import gpus_needed, optimal_mix
from services.cost.domain.pricing import Catalogue, PricingClass

ON_DEMAND, SPOT, RESERVED = (CLASSES.index(c) for c in CLASSES)
Ints = NDArray[np.int64]


def price_table(catalogue: Catalogue, gpu_types: tuple[str, ...]) -> NDArray[np.float64]:
    """$ per GPU hour [region, gpu type, class] from the cost service's catalogue."""
    table = np.zeros((len(REGIONS), len(gpu_types), len(CLASSES)))
    for r, region in enumerate(REGIONS):
        for g, gpu_type in enumerate(gpu_types):
            price = catalogue.price(region, gpu_type)
            if price is None:
                raise ValueError(f"the cost catalogue has no price for {gpu_type} in {region}")
            table[r, g] = [price.rate(c) for c in CLASSES]
    return table


def reserved_commitment(
    catalogue: Catalogue, gpu_types: tuple[str, ...], gpus_per_hour: NDArray[np.float64], spot_cap: float, target: float
) -> Ints:
    """Reserved GPUs per pool: `optimal_mix` over each pool's GPU need per hour [hour, region, gpu type]."""
    result = np.zeros((len(REGIONS), len(gpu_types)), dtype=np.int64)
    for r, region in enumerate(REGIONS):
        for g, gpu_type in enumerate(gpu_types):
            demand = gpus_needed(list(gpus_per_hour[:, r, g]), 1.0, target)
            price = catalogue.price(region, gpu_type)
            if price is not None and any(demand):
                result[r, g] = optimal_mix(demand, price, spot_cap).reserved
    return result


@dataclass(frozen=True)
class Purchase:
    """Which class a new server is bought as, and what the GPUs in use cost per hour."""

    pricing: Pricing
    prices: NDArray[np.float64]  # [region, gpu type, class]
    reserved: Ints  # [region, gpu type] GPUs committed
    spot_share: float

    def choose(self, r: int, g: int, gpus: int, in_use: Ints) -> PricingClass:
        """Reserved while the commitment has room, then spot within the share, then on demand."""
        if self.pricing is Pricing.ON_DEMAND:
            return PricingClass.ON_DEMAND
        held = in_use[r, g]
        if held[RESERVED] + gpus <= self.reserved[r, g]:
            return PricingClass.RESERVED
        if held[SPOT] + gpus <= self.spot_share * (held.sum() + gpus):
            return PricingClass.SPOT
        return PricingClass.ON_DEMAND

    def per_hour(self, in_use: Ints) -> float:
        """$/h of the GPUs in use [region, gpu type, class], plus reserved GPUs committed but idle."""
        idle = np.maximum(self.reserved - in_use[:, :, RESERVED], 0) if self.pricing is Pricing.MIXED else 0
        return float((in_use * self.prices).sum() + (idle * self.prices[:, :, RESERVED]).sum())
