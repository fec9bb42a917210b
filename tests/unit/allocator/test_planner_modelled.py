"""Planning with the GPU performance model: a known model's memory, latency and throughput come from it."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction
from typing import Any

import pytest

from services.allocator.domain.fleet import GpuSpec, fleet_from_mapping
from services.allocator.domain.planner import (
    DeploymentPlan,
    best_plan,
    candidate_plans,
    emulation_for,
    gpu_share,
    running_quantisation,
)
from shared.performance import instance_memory_gib, profile, request_latency_ms, throughput_at

H100 = GpuSpec("h100_80gb", 80, 8.0, 1.0)
A100 = GpuSpec("a100_80gb", 80, 4.1, 0.6)


def by_name(plans: list[DeploymentPlan]) -> dict[tuple[str, str], DeploymentPlan]:
    return {(p.strategy, p.quantisation): p for p in plans}


def config(models: dict[str, Any]) -> dict[str, Any]:
    return {
        "gpu_types": {"a100_80gb": {"memory_gb": 80, "on_demand_per_hour": 4.10, "relative_speed": 0.6}},
        "pools": {"r": {"a100_80gb": [4, 4, 0]}},
        "models": models,
    }


def test_a_known_models_figures_are_the_performance_models():
    seed = fleet_from_mapping(config({"llama-2-13b": {"preferred_gpu": "a100_80gb"}}))
    model = seed.models["llama-2-13b"]
    assert model.emulates == "llama-2-13b"
    assert model.min_memory_gb == pytest.approx(instance_memory_gib("llama-2-13b"))  # 34.8 GB: weights + KV
    assert model.latency_on(A100) == pytest.approx(request_latency_ms(profile("a100_80gb", "llama-2-13b"), 1024, 128))
    plans = by_name(candidate_plans(model, A100, 4.1))
    tp2 = plans[("tensor_parallel_2", "fp16")]
    tp2_profile = profile("a100_80gb", "llama-2-13b", "fp16", 2)
    assert tp2.latency_ms == pytest.approx(request_latency_ms(tp2_profile, 1024, 128))
    assert tp2.memory_per_gpu_gb == pytest.approx(instance_memory_gib("llama-2-13b", "fp16", 2) / 2)
    assert tp2.gpus == 2 and tp2.cost_per_hour == pytest.approx(8.2)
    # Throughput: reference requests per hour within 2 s x the one-GPU request's 2.2 s (it misses 2 s).
    single = plans[("single", "fp16")]
    target = 2 * single.latency_ms
    assert single.throughput == pytest.approx(
        throughput_at(profile("a100_80gb", "llama-2-13b"), 1024, 128, target).requests_per_hour
    )


def test_quantised_weights_decode_faster_and_take_less_memory():
    model = fleet_from_mapping(config({"llama-2-70b": {"preferred_gpu": "a100_80gb"}})).models["llama-2-70b"]
    plans = by_name(candidate_plans(model, A100, 4.1))
    fp16, int8, int4 = (plans[("single", q)] for q in ("fp16", "int8", "int4"))
    assert fp16.memory_per_gpu_gb > 80 > int8.memory_per_gpu_gb > int4.memory_per_gpu_gb  # only int8/int4 fit
    assert fp16.latency_ms > int8.latency_ms > int4.latency_ms  # decoding is memory-bound
    assert fp16.throughput == 0 and fp16.cost_per_throughput == float("inf")  # no room for a KV cache
    pp2 = plans[("pipeline_parallel_2", "fp16")]
    assert pp2.latency_ms == pytest.approx(fp16.latency_ms * 1.05)
    assert pp2.memory_per_gpu_gb == fp16.memory_per_gpu_gb / 2


def test_a_model_too_big_for_one_gpu_spans_the_plan_with_the_best_cost_per_request():
    model = fleet_from_mapping(config({"llama-2-70b": {"preferred_gpu": "a100_80gb"}})).models["llama-2-70b"]
    # fp16 on one a100 does not fit; TP 2 serves a request per $ better than TP 4/8 or a pipeline.
    assert gpu_share(model, A100) == Fraction(2)
    plan = best_plan(model, A100, 4.1, latency_target_ms=6000, gpus_available=8)
    assert plan is not None and (plan.strategy, plan.quantisation) == ("tensor_parallel_4", "fp16")  # fp16 only
    assert best_plan(model, A100, 4.1, latency_target_ms=3000, gpus_available=8) is None  # 3.5 s at best

    # Allowed to run at int4, the plan is one GPU, and that is what runs: shares and emulation follow it.
    quantised = fleet_from_mapping(
        config({"llama-2-70b": {"preferred_gpu": "a100_80gb", "quantisations": ["fp16", "int8", "int4"]}})
    ).models["llama-2-70b"]
    plan = best_plan(quantised, A100, 4.1, latency_target_ms=6000, gpus_available=8)
    assert plan is not None and (plan.strategy, plan.quantisation) == ("single", "int4")  # 3.5 s, 39 GB
    assert running_quantisation(quantised, A100) == "int4"
    assert gpu_share(quantised, A100) == Fraction(1)  # one GPU instead of the fp16 plan's four
    emulation = emulation_for(quantised, A100)
    assert emulation is not None and (emulation.quantisation, emulation.tensor_parallel) == ("int4", 1)


def test_a_user_file_with_latency_ms_loads_and_says_what_wins():
    models = {
        # known: the performance model wins over the file's figures
        "gpt-3.5-turbo": {"min_memory_gb": 40, "preferred_gpu": "a100_80gb", "latency_ms": 300},
        # not known: the file's figures, stretched by the seed's factors
        "mine": {"min_memory_gb": 20, "preferred_gpu": "a100_80gb", "latency_ms": 300},
        # known, but turned off: the file's figures
        "llama-2-13b": {"min_memory_gb": 24, "preferred_gpu": "a100_80gb", "latency_ms": 200, "emulates": None},
        # a size the performance model knows, served by another repository model
        "code": {"preferred_gpu": "a100_80gb", "triton_model": "tinylm", "emulates": "llama-2-7b"},
    }
    seed = fleet_from_mapping(config(models))
    assert seed.models["gpt-3.5-turbo"].latency_on(A100) == pytest.approx(3307, rel=1e-3)
    assert seed.models["gpt-3.5-turbo"].min_memory_gb == pytest.approx(51.7, rel=1e-2)
    mine = seed.models["mine"]
    assert mine.emulates is None and mine.latency_on(A100) == pytest.approx(300 / 0.6 * 1.05)
    assert seed.models["llama-2-13b"].emulates is None and seed.models["llama-2-13b"].min_memory_gb == 24
    code = seed.models["code"]
    assert (code.emulates, code.repository_name) == ("llama-2-7b", "tinylm")
    assert code.latency_on(A100) == pytest.approx(request_latency_ms(profile("a100_80gb", "llama-2-7b"), 1024, 128))


def test_an_unknown_size_to_emulate_is_refused():
    with pytest.raises(ValueError, match="does not know 'llama-9b'"):
        fleet_from_mapping(config({"x": {"preferred_gpu": "a100_80gb", "emulates": "llama-9b"}}))


def test_a_gpu_type_the_performance_model_does_not_know_keeps_the_seeds_factors():
    model = fleet_from_mapping(config({"llama-2-13b": {"preferred_gpu": "a100_80gb"}})).models["llama-2-13b"]
    t4 = GpuSpec("t4_16gb", 16, 0.5, 0.15)
    assert model.latency_on(t4) == pytest.approx(model.latency_ms / 0.15 * 1.05)
    assert replace(model, emulates=None).latency_on(A100) == pytest.approx(model.latency_ms / 0.6 * 1.05)
