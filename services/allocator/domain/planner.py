"""Deployment planning for one model on one GPU type: quantisation, tensor and pipeline parallelism.

The rules (issue 4), with L the model's unquantised latency on this GPU, T its throughput on one
GPU and M its fp16 memory:
- single GPU at fp16 / int8 / int4: memory M x 1 / 0.5 / 0.25 (0.5 / 0.75 / 0.875 less than
  fp32), latency L x 1.05 / 1.15 / 1.25, throughput T;
- tensor parallel over n = 2, 4, 8 GPUs (fp16): memory M / n per GPU, latency L x 1.05 / n x 1.10
  (10% communication overhead), throughput T x n x 0.85;
- pipeline parallel over s = 2..4 stages (fp16): memory M / s per GPU, latency L x 1.05 x 1.05
  (a request still passes every stage; 5% bubble), throughput T x s x 0.95.
Plans must fit the GPU's memory, the latency target and the GPUs available; the best one has the
lowest cost per unit of throughput (ties: fewer GPUs, then lower latency).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from services.allocator.domain.fleet import QUANT_LATENCY, QUANT_MEMORY, GpuSpec, ModelRequirement

TENSOR_PARALLEL = (2, 4, 8)
TENSOR_OVERHEAD = 0.10
TENSOR_EFFICIENCY = 0.85
PIPELINE_STAGES = (2, 3, 4)
PIPELINE_BUBBLE = 0.05


@dataclass(frozen=True)
class DeploymentPlan:
    """One way to run a model: strategy, quantisation, GPUs, and what it gives and costs."""

    strategy: str
    quantisation: str
    gpus: int
    memory_per_gpu_gb: float
    latency_ms: float
    throughput: float
    cost_per_hour: float

    @property
    def cost_per_throughput(self) -> float:
        """$/h per unit of throughput (one unit: one H100 running the model unquantised)."""
        return self.cost_per_hour / self.throughput


def candidate_plans(requirement: ModelRequirement, gpu: GpuSpec, price_per_hour: float) -> list[DeploymentPlan]:
    """Every plan the rules allow, before any filtering."""
    base_latency = requirement.latency_ms / gpu.relative_speed
    throughput = gpu.relative_speed
    memory = requirement.min_memory_gb
    fp16 = QUANT_LATENCY["fp16"]
    plans = [
        DeploymentPlan(
            "single", q, 1, memory * QUANT_MEMORY[q], base_latency * QUANT_LATENCY[q], throughput, price_per_hour
        )
        for q in ("fp16", "int8", "int4")
    ]
    plans += [
        DeploymentPlan(
            f"tensor_parallel_{n}",
            "fp16",
            n,
            memory / n,
            base_latency * fp16 / n * (1 + TENSOR_OVERHEAD),
            throughput * n * TENSOR_EFFICIENCY,
            price_per_hour * n,
        )
        for n in TENSOR_PARALLEL
    ]
    plans += [
        DeploymentPlan(
            f"pipeline_parallel_{s}",
            "fp16",
            s,
            memory / s,
            base_latency * fp16 * (1 + PIPELINE_BUBBLE),
            throughput * s * (1 - PIPELINE_BUBBLE),
            price_per_hour * s,
        )
        for s in PIPELINE_STAGES
    ]
    return plans


def feasible_plans(
    requirement: ModelRequirement, gpu: GpuSpec, price_per_hour: float, latency_target_ms: float, gpus_available: int
) -> list[DeploymentPlan]:
    """The plans that fit in memory, meet the latency target and the GPUs available, best first."""
    plans = [
        plan
        for plan in candidate_plans(requirement, gpu, price_per_hour)
        if plan.memory_per_gpu_gb <= gpu.memory_gb + 1e-9
        and plan.latency_ms <= latency_target_ms + 1e-9
        and plan.gpus <= gpus_available
    ]
    return sorted(plans, key=lambda p: (round(p.cost_per_throughput, 9), p.gpus, p.latency_ms))


def best_plan(
    requirement: ModelRequirement, gpu: GpuSpec, price_per_hour: float, latency_target_ms: float, gpus_available: int
) -> DeploymentPlan | None:
    """The feasible plan with the lowest cost per unit of throughput, or None when none is."""
    plans = feasible_plans(requirement, gpu, price_per_hour, latency_target_ms, gpus_available)
    return plans[0] if plans else None


def gpu_share(
    requirement: ModelRequirement, gpu: GpuSpec, quantisation: str = "fp16", extra_ms: float = 0.0, max_gpus: int = 8
) -> Fraction | None:
    """GPUs one instance takes on `gpu`: 1/k when k instances share one, n when it spans n GPUs.

    One GPU when the instance fits it and is fast enough there (packed `instances_on` to a GPU);
    otherwise, at fp16, the parallel plan (tensor or pipeline) with the best cost per throughput
    that fits and meets the latency target less `extra_ms` (the network); None when nothing does.
    """
    per_gpu = requirement.instances_on(gpu, quantisation)
    if per_gpu >= 1 and requirement.meets_latency(gpu, quantisation, extra_ms):
        return Fraction(1, per_gpu)
    if quantisation != "fp16":
        return None
    target = math.inf if requirement.latency_target_ms is None else requirement.latency_target_ms - extra_ms
    parallel = [plan for plan in feasible_plans(requirement, gpu, 1.0, target, max_gpus) if plan.gpus > 1]
    return Fraction(parallel[0].gpus) if parallel else None


def gpus_for(instances: int, share: Fraction) -> int:
    """GPUs `instances` take at `share` GPUs each: ceil(instances x share)."""
    return math.ceil(max(0, instances) * share)
