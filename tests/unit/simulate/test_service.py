"""The service table: GPUs per instance from the allocator's planner, rates from the performance model."""

from __future__ import annotations

import numpy as np
import pytest

from llmfleet.simulate.build import Prepared
from llmfleet.simulate.catalogue import SHAPES, SimModel, requirement
from llmfleet.simulate.fleet import scaled_fleet
from llmfleet.simulate.service import service_table
from llmfleet.simulate.workload import Lengths, Traffic
from services.allocator.adapters.config import load_fleet
from services.allocator.settings import DEFAULT_FLEET
from services.router.domain.batching import BatchStrategy, limits_for
from shared.performance import Storage, profile
from shared.performance.serving import operating_point


@pytest.mark.parametrize(("size", "prompt", "output"), [("7b", 1000, 100), ("13b", 300, 20), ("70b", 2000, 200)])
def test_capacity_is_the_performance_models_throughput_for_one_request_shape(size, prompt, output):
    model = SimModel("m", size, "conv", 1.0, (1.0, 0.0, 0.0), 2000.0, requirement("m", size))
    lengths = Lengths(np.full(50, float(prompt)), np.full(50, float(output)))
    traffic = Traffic([model], np.zeros((1, 1, 3)), [lengths], [lengths], np.zeros((1, 1, 3)), 10.0)
    fleet = scaled_fleet(load_fleet(DEFAULT_FLEET), 1000, [model])
    table = service_table(traffic, fleet, limits_for(BatchStrategy.THROUGHPUT_OPTIMIZED, 65_536), Storage.LOCAL_NVME)
    for g, gpu_type in enumerate(table.gpu_types):
        if table.gpus[0, g] == 0:
            continue
        p = profile(gpu_type, SHAPES[size], "fp16", int(table.gpus[0, g]))
        expected = operating_point(p, prompt, output, int(table.b_max[0, g]), "test").requests_per_s
        assert table.capacity_rps[0, g] == pytest.approx(expected, rel=1e-9)
        assert table.b_max[0, g] <= 32  # the router's throughput-optimised batch limit
        assert table.b_max[0, g] * (prompt + output) <= p.kv_capacity_tokens


def test_an_instance_spans_the_gpus_the_allocators_planner_gives_it(prepared: Prepared):
    table = prepared.table
    for m, model in enumerate(prepared.traffic.models):
        h100 = table.gpu_types.index("h100_80gb")
        if model.size == "70b":
            assert table.gpus[m, h100] >= 2  # 138 GB of weights do not fit one 80 GB GPU
        else:
            assert table.gpus[m, h100] == 1
        assert np.all(table.cold_start_s[m] > 10)
