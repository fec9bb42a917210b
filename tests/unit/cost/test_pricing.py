"""The pricing catalogue: the issue's defaults and regional prices (base x region multiplier)."""

from __future__ import annotations

import pytest

from services.cost.domain.pricing import Catalogue, GpuRate, PricingClass, RegionRate


def test_defaults_are_the_issues_prices():
    catalogue = Catalogue()
    a100 = catalogue.price("us-east-1", "a100_80gb")
    assert a100 is not None
    assert (a100.on_demand, a100.spot, a100.reserved) == (4.10, 1.23, 2.87)
    h100 = catalogue.price("us-east-1", "h100_80gb")
    assert h100 is not None and (h100.on_demand, h100.spot, h100.reserved) == (8.00, 2.40, 5.60)
    v100 = catalogue.price("us-east-1", "v100_32gb")
    assert v100 is not None and (v100.on_demand, v100.spot, v100.reserved) == (2.48, 0.74, 1.74)
    assert {(r.region, r.multiplier, r.egress_per_gb) for r in catalogue.regions} == {
        ("us-east-1", 1.00, 0.09),
        ("us-west-2", 1.05, 0.09),
        ("eu-west-1", 1.15, 0.12),
        ("ap-southeast-1", 1.25, 0.15),
    }


@pytest.mark.parametrize(
    ("region", "gpu", "pricing_class", "expected"),
    [
        ("eu-west-1", "a100_80gb", PricingClass.ON_DEMAND, 4.715),  # 4.10 x 1.15
        ("eu-west-1", "a100_80gb", PricingClass.SPOT, 1.4145),  # 1.23 x 1.15
        ("eu-west-1", "a100_80gb", PricingClass.RESERVED, 3.3005),  # 2.87 x 1.15
        ("ap-southeast-1", "h100_80gb", PricingClass.ON_DEMAND, 10.0),  # 8.00 x 1.25
        ("us-west-2", "v100_32gb", PricingClass.SPOT, 0.777),  # 0.74 x 1.05
    ],
)
def test_regional_price_is_base_times_multiplier(region, gpu, pricing_class, expected):
    price = Catalogue().price(region, gpu)
    assert price is not None
    assert price.rate(pricing_class) == pytest.approx(expected, abs=1e-9)


def test_price_list_covers_every_region_and_gpu_once():
    prices = Catalogue().price_list()
    assert len(prices) == 12
    assert len({(p.region, p.gpu_type) for p in prices}) == 12


def test_unknown_region_or_gpu_has_no_price_and_edits_take_effect():
    catalogue = Catalogue(gpus=(GpuRate("l4_24gb", 0.80, 0.30, 0.55),), regions=(RegionRate("x-1", 2.0, 0.1),))
    assert catalogue.price("us-east-1", "l4_24gb") is None
    assert catalogue.price("x-1", "a100_80gb") is None
    edited = catalogue.price("x-1", "l4_24gb")
    assert edited is not None and edited.on_demand == 1.6 and edited.reserved == 1.1
