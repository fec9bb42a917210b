"""The pricing catalogue: per-GPU-hour rates by pricing class, region multipliers and egress."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

HOURS_PER_MONTH = 730.0  # 8,760 hours a year / 12, the cloud billing convention
HOURS_PER_YEAR = 8760.0


class PricingClass(StrEnum):
    """How a GPU hour is bought."""

    ON_DEMAND = "on_demand"
    SPOT = "spot"
    RESERVED = "reserved"


@dataclass(frozen=True)
class GpuRate:
    """Base prices of one GPU type, dollars per GPU hour, before the region multiplier."""

    gpu_type: str
    on_demand: float
    spot: float
    reserved: float

    def rate(self, pricing_class: PricingClass) -> float:
        """The base price of one GPU hour bought as `pricing_class`."""
        return {PricingClass.ON_DEMAND: self.on_demand, PricingClass.SPOT: self.spot}.get(pricing_class, self.reserved)


@dataclass(frozen=True)
class RegionRate:
    """A region's price multiplier and its egress price in dollars per GB."""

    region: str
    multiplier: float
    egress_per_gb: float


DEFAULT_GPU_RATES: tuple[GpuRate, ...] = (
    GpuRate("a100_80gb", on_demand=4.10, spot=1.23, reserved=2.87),
    GpuRate("h100_80gb", on_demand=8.00, spot=2.40, reserved=5.60),
    GpuRate("v100_32gb", on_demand=2.48, spot=0.74, reserved=1.74),
)
DEFAULT_REGION_RATES: tuple[RegionRate, ...] = (
    RegionRate("us-east-1", multiplier=1.00, egress_per_gb=0.09),
    RegionRate("us-west-2", multiplier=1.05, egress_per_gb=0.09),
    RegionRate("eu-west-1", multiplier=1.15, egress_per_gb=0.12),
    RegionRate("ap-southeast-1", multiplier=1.25, egress_per_gb=0.15),
)


@dataclass(frozen=True)
class RegionalPrice:
    """What one GPU hour costs in one region, per pricing class (base x region multiplier)."""

    region: str
    gpu_type: str
    on_demand: float
    spot: float
    reserved: float

    def rate(self, pricing_class: PricingClass) -> float:
        """The price of one GPU hour bought as `pricing_class` in this region."""
        return {PricingClass.ON_DEMAND: self.on_demand, PricingClass.SPOT: self.spot}.get(pricing_class, self.reserved)


@dataclass(frozen=True)
class Catalogue:
    """Every GPU rate and region rate the service knows."""

    gpus: tuple[GpuRate, ...] = DEFAULT_GPU_RATES
    regions: tuple[RegionRate, ...] = DEFAULT_REGION_RATES

    def region(self, name: str) -> RegionRate | None:
        """The region's rate, or None when the catalogue does not list it."""
        return next((r for r in self.regions if r.region == name), None)

    def price(self, region: str, gpu_type: str) -> RegionalPrice | None:
        """The regional price of a GPU type, or None when either is not in the catalogue."""
        rate = next((g for g in self.gpus if g.gpu_type == gpu_type), None)
        where = self.region(region)
        if rate is None or where is None:
            return None
        m = where.multiplier
        # Rounded to the cent fraction a price list shows, so 4.10 x 1.15 is 4.715, not 4.7149999.
        return RegionalPrice(
            region, gpu_type, round(rate.on_demand * m, 6), round(rate.spot * m, 6), round(rate.reserved * m, 6)
        )

    def price_list(self) -> list[RegionalPrice]:
        """Every (region, GPU type) price, sorted by region then GPU type."""
        prices = (self.price(r.region, g.gpu_type) for r in self.regions for g in self.gpus)
        return sorted((p for p in prices if p is not None), key=lambda p: (p.region, p.gpu_type))
