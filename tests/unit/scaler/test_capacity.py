"""Capacity per instance from the GPU performance model, per model and GPU type; a set figure still overrides."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from services.scaler.adapters.fleet_file import read_model_specs
from services.scaler.domain.capacity import (
    FALLBACK_RPH,
    ModelSpec,
    Reference,
    capacities,
    instance_capacity,
    smallest_group,
)
from services.scaler.settings import ScalerSettings
from services.scaler.use_cases.evaluation import capacity_per_instance
from shared.performance import capacity_rph, profile, request_latency_ms, throughput_at


def test_a_model_that_fits_one_gpu_and_meets_the_target_is_sized_at_the_target():
    capacity = instance_capacity(ModelSpec("code", "llama-2-7b", "h100_80gb"))
    assert capacity is not None and (capacity.tensor_parallel, capacity.meets_target) == (1, True)
    expected = capacity_rph(profile("h100_80gb", "llama-2-7b"), 1024, 128, 2000)
    assert capacity.requests_per_hour == pytest.approx(expected)
    # the model's own target wins over the platform's 2 s
    tight = instance_capacity(ModelSpec("code", "llama-2-7b", "h100_80gb", latency_target_ms=1500))
    assert tight is not None and tight.target_ms == 1500 and tight.requests_per_hour < capacity.requests_per_hour


def test_an_instance_spans_the_fewest_gpus_that_hold_it():
    assert smallest_group("llama-2-13b", "a100_80gb", Reference()) == 1
    assert smallest_group("llama-2-13b", "v100_32gb", Reference()) == 2  # 34.8 GB with its KV cache
    assert smallest_group("gpt-4-turbo", "h100_80gb", Reference()) == 8
    assert smallest_group("gpt-4-turbo", "v100_32gb", Reference()) is None


def test_a_model_that_cannot_meet_the_target_is_sized_at_twice_one_requests_latency():
    capacity = instance_capacity(ModelSpec("big", "llama-2-70b", "h100_80gb"))
    assert capacity is not None and capacity.tensor_parallel == 2 and not capacity.meets_target
    p = profile("h100_80gb", "llama-2-70b", "fp16", 2)
    single = request_latency_ms(p, 1024, 128)  # 4.9 s: a 128-token answer takes longer than 2 s
    assert capacity.target_ms == pytest.approx(2 * single)
    assert capacity.requests_per_hour == pytest.approx(throughput_at(p, 1024, 128, 2 * single).requests_per_hour)


def test_the_reference_request_and_batch_limit_are_settings():
    short = Reference(prompt_tokens=1024, output_tokens=16, max_batch=8)
    capacity = instance_capacity(ModelSpec("conv", "llama-2-7b", "a100_80gb"), short)
    p = profile("a100_80gb", "llama-2-7b")
    assert capacity is not None and capacity.requests_per_hour == pytest.approx(
        throughput_at(p, 1024, 16, 2000, max_batch=8).requests_per_hour
    )


def test_models_the_performance_model_cannot_size_get_no_figure():
    specs = {
        "known": ModelSpec("known", "llama-2-13b", "a100_80gb"),
        "unknown": ModelSpec("unknown", None, "a100_80gb"),
        "odd-gpu": ModelSpec("odd-gpu", "llama-2-13b", "t4_16gb"),
        "too-big": ModelSpec("too-big", "gpt-4-turbo", "v100_32gb"),
    }
    assert set(capacities(specs)) == {"known"}


def test_the_fleet_file_names_each_models_size_gpu_and_target(tmp_path: Path):
    path = tmp_path / "fleet.yaml"
    models = {
        "llama-2-13b": {"preferred_gpu": "v100_32gb"},
        "azure-code": {"preferred_gpu": "h100_80gb", "triton_model": "tinylm", "emulates": "llama-2-7b"},
        "mine": {"min_memory_gb": 10, "preferred_gpu": "a100_80gb", "latency_target_ms": 900},
        "opted-out": {"preferred_gpu": "a100_80gb", "emulates": None},
    }
    path.write_text(yaml.safe_dump({"models": models}))
    specs = read_model_specs(path)
    assert specs["llama-2-13b"] == ModelSpec("llama-2-13b", "llama-2-13b", "v100_32gb")
    assert specs["azure-code"].emulates == "llama-2-7b"
    assert specs["mine"] == ModelSpec("mine", None, "a100_80gb", 900.0)
    assert specs["opted-out"].emulates is None
    path.write_text("models: [1, 2]")
    with pytest.raises(ValueError, match="models"):
        read_model_specs(path)


def test_a_set_figure_overrides_the_model_for_every_model(tmp_path: Path):
    fleet = Path(__file__).parents[3] / "services/allocator/fleet.yaml"
    from_model = capacity_per_instance(ScalerSettings(fleet_config=fleet))
    expected = instance_capacity(ModelSpec("llama-2-13b", "llama-2-13b", "v100_32gb"))
    assert expected is not None and from_model("llama-2-13b") == pytest.approx(expected.requests_per_hour)
    assert from_model("not-in-the-fleet") == FALLBACK_RPH
    fixed = capacity_per_instance(ScalerSettings(fleet_config=fleet, requests_per_instance_hour=25_000))
    assert fixed("llama-2-13b") == fixed("not-in-the-fleet") == 25_000


def test_a_missing_fleet_file_leaves_the_seeds_figure(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    capacity = capacity_per_instance(ScalerSettings(fleet_config=tmp_path / "missing.yaml"))
    assert capacity("llama-2-13b") == FALLBACK_RPH and "no capacity per model" in caplog.text
