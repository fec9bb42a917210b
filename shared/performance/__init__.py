"""One calibrated GPU performance model, shared by the emulated Triton servers, the planner, the scaler
and the simulator. Pure: dataclasses and arithmetic, no I/O, no clock.

    p = profile("a100_80gb", "llama-2-70b", "fp16", tensor_parallel=8)
    p.prefill_ms(2048); p.decode_step_ms(batch=16, kv_tokens=16 * 1100)
    throughput_at(p, prompt_tokens=1024, output_tokens=128, latency_target_ms=2000).requests_per_hour
    cold_start_s("llama-2-70b", Storage.LOCAL_NVME)

How it was calibrated, from which published measurements, and how well it reproduces them:
docs/performance-model.md.
"""

from shared.performance.coldstart import ENGINE_START_S, Storage, cold_start_s, load_s
from shared.performance.fleet import (
    FLEET_GPUS,
    LATENCY_TARGET_MS,
    OUTPUT_TOKENS,
    PROMPT_TOKENS,
    FleetFigure,
    best_deployment,
    figure,
    figures_for_fleet,
    instance_memory_gib,
    planner_latency_ms,
    relative_speed,
    serving_target,
)
from shared.performance.hardware import GPUS, MAX_BATCH, TENSOR_PARALLEL, GpuHardware, Quantisation
from shared.performance.models import FLEET_MODELS, MODELS, ModelShape
from shared.performance.profile import Profile, profile
from shared.performance.serving import Throughput, capacity_rph, request_latency_ms, throughput_at

__all__ = [
    "ENGINE_START_S",
    "FLEET_GPUS",
    "FLEET_MODELS",
    "GPUS",
    "LATENCY_TARGET_MS",
    "MAX_BATCH",
    "MODELS",
    "OUTPUT_TOKENS",
    "PROMPT_TOKENS",
    "TENSOR_PARALLEL",
    "FleetFigure",
    "GpuHardware",
    "ModelShape",
    "Profile",
    "Quantisation",
    "Storage",
    "Throughput",
    "best_deployment",
    "capacity_rph",
    "cold_start_s",
    "figure",
    "figures_for_fleet",
    "instance_memory_gib",
    "load_s",
    "planner_latency_ms",
    "profile",
    "relative_speed",
    "request_latency_ms",
    "serving_target",
    "throughput_at",
]
