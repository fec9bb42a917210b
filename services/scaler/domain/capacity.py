"""What one instance of a model serves per hour: from the GPU performance model, per model and GPU type.

An instance is the model on one GPU type (the scaler does not see GPU types: allocation events
carry them, but it keeps only placements, so it sizes for the model's preferred type), in the
smallest tensor-parallel group that holds it at fp16 (one GPU when it fits, as the allocator
places it). Its capacity is the most reference requests per hour it serves with each request's
latency within the model's own target (else the reference's, the platform's 2 s), the batch no
larger than the engine runs at once. Where even one request alone misses the target (above about
20B with 128-token answers), the capacity is at twice that request's latency and `meets_target`
is False: what the instance serves while batching at most doubles a request's latency.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from shared.performance import (
    GPUS,
    LATENCY_TARGET_MS,
    MAX_BATCH,
    MODELS,
    OUTPUT_TOKENS,
    PROMPT_TOKENS,
    TENSOR_PARALLEL,
    instance_memory_gib,
    profile,
    serving_target,
    throughput_at,
)

# The seed's one global figure: what an instance of a model the performance model does not know serves.
FALLBACK_RPH = 1000.0


@dataclass(frozen=True)
class ModelSpec:
    """What sizes a model's instance: its performance-model model, GPU type and latency target."""

    model_id: str
    emulates: str | None  # a shared.performance model name; None: not known
    gpu_type: str
    latency_target_ms: float | None = None


@dataclass(frozen=True)
class Reference:
    """The request capacity is counted in, and the limits an instance serves it under."""

    prompt_tokens: int = PROMPT_TOKENS
    output_tokens: int = OUTPUT_TOKENS
    latency_target_ms: float = LATENCY_TARGET_MS  # for models without a target of their own
    max_batch: int = MAX_BATCH  # sequences one instance runs at once


@dataclass(frozen=True)
class Capacity:
    """One instance's requests per hour, and the deployment and target it was taken at."""

    requests_per_hour: float
    gpu_type: str
    tensor_parallel: int
    target_ms: float
    meets_target: bool


def smallest_group(name: str, gpu_type: str, reference: Reference) -> int | None:
    """The fewest GPUs of `gpu_type` (a TP degree) whose memory holds an instance; None when none does."""
    memory = GPUS[gpu_type].memory_gib
    for tp in TENSOR_PARALLEL:
        needed = instance_memory_gib(name, "fp16", tp, reference.prompt_tokens, reference.output_tokens)
        if needed / tp <= memory:
            return tp
    return None


def instance_capacity(spec: ModelSpec, reference: Reference = Reference()) -> Capacity | None:
    """The capacity of one instance of the model; None when the performance model cannot size it."""
    name = spec.emulates
    if name is None or name not in MODELS or spec.gpu_type not in GPUS:
        return None
    tp = smallest_group(name, spec.gpu_type, reference)
    if tp is None:
        return None
    p = profile(spec.gpu_type, name, "fp16", tp)
    wanted = reference.latency_target_ms if spec.latency_target_ms is None else spec.latency_target_ms
    target, meets = serving_target(p, reference.prompt_tokens, reference.output_tokens, wanted)
    point = throughput_at(p, reference.prompt_tokens, reference.output_tokens, target, reference.max_batch)
    return Capacity(point.requests_per_hour, spec.gpu_type, tp, target, meets)


def capacities(specs: Mapping[str, ModelSpec], reference: Reference = Reference()) -> dict[str, Capacity]:
    """Model id -> one instance's capacity, for every model the performance model can size."""
    result = {}
    for model_id, spec in specs.items():
        capacity = instance_capacity(spec, reference)
        if capacity is not None and capacity.requests_per_hour > 0:
            result[model_id] = capacity
    return result
