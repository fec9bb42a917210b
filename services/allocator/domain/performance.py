"""The allocator's figures from the GPU performance model (`shared.performance`), per deployment.

A model requirement names the performance model's model it is (`emulates`: its own id for the
fleet's models, a size such as llama-2-7b for a model that tinylm stands in for). Its memory,
latency and throughput on a GPU type the performance model knows then come from here, at the
reference request (1,024 prompt and 128 output tokens, the Azure 2023 conversation trace's median):
- memory: weights plus the KV cache of 8 such requests, over the 10% activation reserve;
- latency: one such request alone, end to end;
- throughput: requests per hour of one instance, with each request's latency within the target
  (or, where even one request alone on one GPU misses it, within twice that request's latency).
"""

from __future__ import annotations

import math
from dataclasses import replace

from shared.performance import (
    GPUS,
    LATENCY_TARGET_MS,
    MODELS,
    OUTPUT_TOKENS,
    PROMPT_TOKENS,
    instance_memory_gib,
    profile,
    request_latency_ms,
    serving_target,
    throughput_at,
)
from shared.performance.hardware import ACTIVATION_RESERVE, GIB
from shared.performance.profile import Profile


def known_model(name: str | None) -> bool:
    """True when the performance model knows the model `name`."""
    return name is not None and name in MODELS


def known_gpu(gpu_type: str) -> bool:
    """True when the performance model knows the GPU type."""
    return gpu_type in GPUS


def memory_gb(name: str, quantisation: str = "fp16", tensor_parallel: int = 1) -> float:
    """Memory of one instance (all its GPUs together) at the reference request."""
    return instance_memory_gib(name, quantisation, tensor_parallel, PROMPT_TOKENS, OUTPUT_TOKENS)


def latency_ms(name: str, gpu_type: str, quantisation: str = "fp16", tensor_parallel: int = 1) -> float:
    """One reference request alone on the deployment, end to end."""
    return request_ms(profile(gpu_type, name, quantisation, tensor_parallel))


def request_ms(p: Profile) -> float:
    """One reference request alone on the deployment `p`, end to end."""
    return request_latency_ms(p, PROMPT_TOKENS, OUTPUT_TOKENS)


def throughput_target_ms(single: Profile, target_ms: float | None) -> float:
    """The latency every plan of a model on one GPU type may reach while batching, so plans compare alike.

    The model's target (None: the platform's 2 s); where one request alone on one GPU at fp16
    (`single`) misses it, twice that request's latency (as the performance model's fleet figures).
    """
    wanted = LATENCY_TARGET_MS if target_ms is None else target_ms
    return serving_target(single, PROMPT_TOKENS, OUTPUT_TOKENS, wanted)[0]


def throughput_rph(p: Profile, target_ms: float) -> float:
    """Reference requests per hour one instance serves with each request's latency within `target_ms`."""
    return throughput_at(p, PROMPT_TOKENS, OUTPUT_TOKENS, target_ms).requests_per_hour


def pipeline_throughput_rph(single: Profile, stages: int, target_ms: float) -> float:
    """Requests per hour of a pipeline over `stages` GPUs, bubble aside (the performance model has no pipelines).

    `single` is the model on one of the GPUs at fp16. Each stage holds 1/stages of the weights and
    of every request's KV cache, so the group's KV capacity is what its memory holds after the
    whole weights; `stages` requests are in flight, one per stage, each at the single GPU's speed
    with 1/stages of that capacity.
    """
    per_token = MODELS[single.model].kv_bytes_per_token(1)
    free = (stages * GPUS[single.gpu_type].memory_gib * (1 - ACTIVATION_RESERVE) - single.weights_gib) * GIB
    capacity = math.floor(free / per_token) if per_token > 0 else single.kv_capacity_tokens
    stage = replace(single, kv_capacity_tokens=max(0, capacity // stages))
    return stages * throughput_rph(stage, target_ms)
