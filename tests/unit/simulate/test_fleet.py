"""The simulated fleet's bookkeeping: pools, instance counts, loads, stops; the scaled seed."""

from __future__ import annotations

import numpy as np
import pytest

from llmfleet.simulate.fleet import Fleet, scaled_fleet
from services.allocator.adapters.config import load_fleet
from services.allocator.domain.scaling import Server
from services.allocator.settings import DEFAULT_FLEET
from services.cost.domain.pricing import PricingClass


def test_the_seeds_pools_scale_to_the_fleet_size():
    fleet = scaled_fleet(load_fleet(DEFAULT_FLEET), 10_000, [])
    assert sum(p.total for p in fleet.pools) == 10_000
    assert {p.region for p in fleet.pools} == {"us-east-1", "eu-west-1", "ap-southeast-1"}
    us_a100 = next(p for p in fleet.pools if (p.region, p.gpu_type) == ("us-east-1", "a100_80gb"))
    assert us_a100.total == pytest.approx(1000 * 10_000 / 3350, abs=2)
    assert all(p.available <= p.total for p in fleet.pools)


def make_fleet() -> Fleet:
    config = scaled_fleet(load_fleet(DEFAULT_FLEET), 1000, [])
    return Fleet(config, {"a": 0, "b": 1}, ("a100_80gb", "h100_80gb", "v100_32gb"), np.ones((2, 3), dtype=np.int64))


def test_a_server_serves_after_its_cold_start_and_returns_its_gpus_when_stopped():
    fleet = make_fleet()
    free = fleet.pools[("eu-west-1", "h100_80gb")].available
    fleet.start(Server("s1", "eu-west-1", "h100_80gb", 4, {"a": 2}), PricingClass.SPOT, 0.0, 30.0)
    assert fleet.pools[("eu-west-1", "h100_80gb")].available == free - 4
    assert fleet.loading[0, 1, 1] == 2 and fleet.ready[0, 1, 1] == 0
    assert fleet.finish_loads(29.0) == []
    assert fleet.finish_loads(30.0) == [("s1", "a")]
    assert fleet.ready[0, 1, 1] == 2 and fleet.loading.sum() == 0
    fleet.add("s1", "a", 1, None)  # more of a loaded model: at once
    fleet.add("s1", "b", 1, 60.0)  # another model: after its load
    assert fleet.ready[0, 1, 1] == 3 and fleet.loading[1, 1, 1] == 1
    assert fleet.gpus_by_class.sum() == 4
    entry = fleet.stop("s1")
    assert entry.server.placements == {"a": 3, "b": 1}
    assert fleet.ready.sum() == fleet.loading.sum() == fleet.gpus_by_class.sum() == 0
    assert fleet.pools[("eu-west-1", "h100_80gb")].available == free
    assert fleet.finish_loads(100.0) == []  # the stopped server's load never lands


def test_instances_added_while_a_model_loads_come_with_the_load():
    fleet = make_fleet()
    fleet.start(Server("s1", "us-east-1", "a100_80gb", 3, {"a": 1}), PricingClass.ON_DEMAND, 0.0, 50.0)
    fleet.add("s1", "a", 2, None)
    assert fleet.ready.sum() == 0 and fleet.loading[0, 0, 0] == 3
    fleet.remove("s1", "a", 1)
    fleet.finish_loads(50.0)
    assert fleet.ready[0, 0, 0] == 2 and fleet.loading.sum() == 0
