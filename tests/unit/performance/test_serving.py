"""Throughput at a latency target, KV-bounded batches, cold starts and the fleet's figures."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.performance import (
    FLEET_GPUS,
    FLEET_MODELS,
    GPUS,
    MODELS,
    TENSOR_PARALLEL,
    Quantisation,
    Storage,
    capacity_rph,
    cold_start_s,
    figure,
    figures_for_fleet,
    planner_latency_ms,
    profile,
    relative_speed,
    request_latency_ms,
    throughput_at,
)
from shared.performance.serving import kv_batch_limit

deployments = st.builds(
    profile,
    st.sampled_from(sorted(GPUS)),
    st.sampled_from(sorted(MODELS)),
    st.sampled_from(list(Quantisation)),
    st.sampled_from(TENSOR_PARALLEL),
)
prompts = st.integers(min_value=1, max_value=16_384)
outputs = st.integers(min_value=1, max_value=1024)
targets = st.floats(min_value=10.0, max_value=120_000.0)


@given(deployments, prompts, outputs, targets, st.integers(min_value=1, max_value=512))
def test_throughput_at_a_target_respects_the_target_the_kv_cache_and_the_batch_limit(p, n, t, target, max_batch):
    point = throughput_at(p, n, t, target, max_batch)
    if point.batch == 0:
        assert point.limited_by == "infeasible" and point.requests_per_s == 0.0
        assert request_latency_ms(p, n, t) > target or kv_batch_limit(p, n, t) == 0
        return
    assert point.latency_ms <= target + 1e-6
    assert point.batch * (n + t) <= p.kv_capacity_tokens
    assert point.batch <= max_batch
    assert point.requests_per_s == pytest.approx(point.batch / point.latency_ms * 1000)
    assert point.output_tokens_per_s == pytest.approx(point.requests_per_s * t)
    if point.limited_by == "latency":  # one more request in the batch would miss the target
        assert request_latency_ms(p, n, t, point.batch + 1) > target


@given(deployments, prompts, outputs, st.integers(min_value=1, max_value=256))
def test_a_fuller_batch_is_slower_per_request_and_faster_in_total(p, n, t, b):
    one, more = request_latency_ms(p, n, t, b), request_latency_ms(p, n, t, b + 1)
    assert more >= one
    assert (b + 1) / more >= b / one - 1e-12


def test_the_kv_cache_bounds_the_batch():
    p = profile("v100_32gb", "llama-2-13b", "fp16", 1)  # 24 GiB of weights in 32: little KV cache left
    point = throughput_at(p, 4096, 512, latency_target_ms=1e9)
    assert point.limited_by == "kv_cache"
    assert point.batch == p.kv_capacity_tokens // (4096 + 512) >= 1


def test_an_unreachable_target_serves_nothing():
    p = profile("a100_80gb", "llama-2-70b", "fp16", 8)
    point = throughput_at(p, 1024, 128, latency_target_ms=100.0)
    assert (point.batch, point.requests_per_s, point.limited_by) == (0, 0.0, "infeasible")
    assert capacity_rph(p, 1024, 128, 100.0) == 0.0


def test_a_model_that_does_not_fit_serves_nothing():
    assert throughput_at(profile("l4_24gb", "llama-2-70b"), 1024, 128, 1e9).batch == 0


def test_capacity_is_requests_per_hour_times_headroom():
    p = profile("h100_80gb", "llama-2-13b")
    full = throughput_at(p, 1024, 128, 5000.0).requests_per_hour
    assert capacity_rph(p, 1024, 128, 5000.0, headroom=0.8) == pytest.approx(0.8 * full)


def test_cold_start_grows_with_size_and_shrinks_with_quantisation_and_faster_storage():
    assert cold_start_s("llama-2-70b", Storage.LOCAL_NVME) > cold_start_s("llama-2-13b", Storage.LOCAL_NVME)
    assert cold_start_s("llama-2-70b", "local_nvme", "int4") < cold_start_s("llama-2-70b", "local_nvme")
    slow, fast = (cold_start_s("llama-2-13b", s) for s in (Storage.NETWORK_DISK, Storage.STREAMED))
    assert slow > fast


def test_the_fleet_figures_cover_every_model_and_fit_their_gpus():
    figures = figures_for_fleet()
    assert set(figures) == set(FLEET_MODELS)
    for name, by_gpu in figures.items():
        assert set(by_gpu) == set(FLEET_GPUS)
        assert any(f is not None for f in by_gpu.values()), name
        for gpu_type, f in by_gpu.items():
            if f is None:
                continue
            assert f.model == name and f.gpu_type == gpu_type
            assert f.min_memory_gib / f.tensor_parallel <= GPUS[gpu_type].memory_gib
            assert f.throughput.batch >= 1 and f.requests_per_hour > 0
            assert f.throughput.latency_ms <= f.target_ms + 1e-6
            assert f.meets_target == (f.single_request_ms <= 2000.0)
            assert set(f.cold_start_s) == {s.value for s in Storage}


def test_the_biggest_models_do_not_fit_the_small_gpus():
    figures = figures_for_fleet(models=["gpt-4-turbo"])
    assert figures["gpt-4-turbo"]["l4_24gb"] is None and figures["gpt-4-turbo"]["v100_32gb"] is None
    assert figure("llama-2-70b", "a100_80gb", tensor_parallel=1) is None


def test_planner_latency_is_one_request_on_one_h100():
    expected = request_latency_ms(profile("h100_80gb", "llama-2-13b"), 1024, 128)
    assert planner_latency_ms("llama-2-13b") == pytest.approx(expected)
    ordered = [planner_latency_ms(m) for m in ("echo", "llama-2-13b", "llama-2-70b", "gpt-4-turbo")]
    assert ordered == sorted(ordered)


def test_relative_speeds_rank_the_gpus():
    speeds = {g: relative_speed(g) for g in GPUS}
    assert speeds["h100_80gb"] == 1.0
    assert 1.0 > speeds["a100_80gb"] > speeds["v100_32gb"] > speeds["l4_24gb"] > 0
    assert not math.isclose(speeds["a100_80gb"], 1.0)
