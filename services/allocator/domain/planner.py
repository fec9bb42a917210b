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

Those are the seed's invented factors, kept for models the GPU performance model does not know.
For a model it knows, on a GPU type it knows, the same strategies take memory, latency and
throughput from the performance model (`performance.py`): quantisation and tensor parallelism as
it models them (int8/int4 decode faster, TP pays measured all-reduce costs), throughput in
reference requests per hour within the target. It has no pipeline parallelism: a pipeline plan is
the single-GPU request plus the 5% bubble, with `s` requests in flight sharing the group's KV cache.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace
from fractions import Fraction

from services.allocator.domain import performance
from services.allocator.domain.fleet import QUANT_LATENCY, QUANT_MEMORY, GpuSpec, ModelRequirement
from shared.performance import profile

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
        """$/h per unit of throughput (a known model: requests/h; else one H100 running the model unquantised)."""
        return self.cost_per_hour / self.throughput if self.throughput > 0 else math.inf


def candidate_plans(requirement: ModelRequirement, gpu: GpuSpec, price_per_hour: float) -> list[DeploymentPlan]:
    """Every plan the rules allow, before any filtering."""
    if (name := requirement.performance_model) is not None and performance.known_gpu(gpu.gpu_type):
        return _modelled_plans(name, requirement.latency_target_ms, gpu, price_per_hour)
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


def _modelled_plans(name: str, target_ms: float | None, gpu: GpuSpec, price: float) -> list[DeploymentPlan]:
    """The rules' strategies, each with the performance model's memory, latency and throughput."""
    single = profile(gpu.gpu_type, name)
    target = performance.throughput_target_ms(single, target_ms)

    def modelled(strategy: str, quantisation: str, gpus: int) -> DeploymentPlan:
        p = single if (quantisation, gpus) == ("fp16", 1) else profile(gpu.gpu_type, name, quantisation, gpus)
        memory = performance.memory_gb(name, quantisation, gpus) / gpus
        throughput = performance.throughput_rph(p, target)
        return DeploymentPlan(strategy, quantisation, gpus, memory, performance.request_ms(p), throughput, price * gpus)

    plans = [modelled("single", q, 1) for q in ("fp16", "int8", "int4")]
    plans += [modelled(f"tensor_parallel_{n}", "fp16", n) for n in TENSOR_PARALLEL]
    for s in PIPELINE_STAGES:
        throughput = performance.pipeline_throughput_rph(single, s, target) * (1 - PIPELINE_BUBBLE)
        memory, latency = plans[0].memory_per_gpu_gb / s, plans[0].latency_ms * (1 + PIPELINE_BUBBLE)
        plans.append(DeploymentPlan(f"pipeline_parallel_{s}", "fp16", s, memory, latency, throughput, price * s))
    return plans


def feasible_plans(
    requirement: ModelRequirement, gpu: GpuSpec, price_per_hour: float, latency_target_ms: float, gpus_available: int
) -> list[DeploymentPlan]:
    """The plans that fit in memory, meet the latency target and the GPUs available, best first.

    Only the quantisations the model allows: a model whose quality was not checked at int8 is
    never planned (nor run) at int8.
    """
    plans = [
        plan
        for plan in candidate_plans(requirement, gpu, price_per_hour)
        if plan.quantisation in requirement.quantisations
        and plan.memory_per_gpu_gb <= gpu.memory_gb + 1e-9
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


@functools.lru_cache(maxsize=4096)
def running_quantisation(requirement: ModelRequirement, gpu: GpuSpec, max_gpus: int = 8) -> str:
    """The quantisation instances of the model run at on `gpu`: the best plan's (fp16 when none fits).

    The deployment plan is what runs: planning counts GPU shares at this quantisation, and an
    emulated server is started at it.
    """
    target = math.inf if requirement.latency_target_ms is None else requirement.latency_target_ms
    plans = feasible_plans(requirement, gpu, 1.0, target, max_gpus)
    return plans[0].quantisation if plans else "fp16"


def instance_throughput(requirement: ModelRequirement, gpu: GpuSpec, max_gpus: int = 8) -> float:
    """What one instance of the model serves on `gpu` under its best plan (requests/h when modelled; 0: none fits)."""
    target = math.inf if requirement.latency_target_ms is None else requirement.latency_target_ms
    plans = feasible_plans(requirement, gpu, 1.0, target, max_gpus)
    return plans[0].throughput if plans else 0.0


@functools.lru_cache(maxsize=16384)
def instance_rate(
    requirement: ModelRequirement, gpu: GpuSpec, quantisation: str, share: Fraction, extra_ms: float = 0.0
) -> float:
    """What one instance serves at `share` GPUs of `gpu` and `quantisation` (0: no such plan).

    In the units of `DeploymentPlan.throughput` (requests/h for a modelled model), each request
    within the model's latency target less `extra_ms` (the network, when served from another
    region: batching may use only what the round trip leaves). An instance
    sharing a GPU with k - 1 others (`share` 1/k) gets 1/k of what the GPU serves; one spanning n
    GPUs is the fastest parallel plan over n that meets the latency target (what `gpu_share`
    picks, the network aside). A modelled model on a GPU type the performance model does not know
    is its H100 rate stretched by the GPU's relative speed, so all its options are in requests/h.
    """
    gpus = int(share) if share >= 1 else 1
    if extra_ms > 0 and requirement.latency_target_ms is not None:
        requirement = replace(requirement, latency_target_ms=requirement.latency_target_ms - extra_ms)
    name = requirement.performance_model
    scale = 1.0
    if name is not None and not performance.known_gpu(gpu.gpu_type):
        h100 = profile("h100_80gb", name)
        scale = performance.throughput_rph(h100, performance.throughput_target_ms(h100, requirement.latency_target_ms))
    plans = [p for p in candidate_plans(requirement, gpu, 1.0) if p.quantisation == quantisation and p.gpus == gpus]
    if gpus > 1:
        target = math.inf if requirement.latency_target_ms is None else requirement.latency_target_ms
        plans = [p for p in plans if p.strategy != "single" and p.latency_ms <= target + 1e-9] or plans
    else:
        plans = [p for p in plans if p.strategy == "single"]
    if not plans:
        return 0.0
    return max(p.throughput for p in plans) * float(min(share, Fraction(1))) * scale


def gpu_share(
    requirement: ModelRequirement,
    gpu: GpuSpec,
    quantisation: str | None = None,
    extra_ms: float = 0.0,
    max_gpus: int = 8,
) -> Fraction | None:
    """GPUs one instance takes on `gpu`: 1/k when k instances share one, n when it spans n GPUs.

    `quantisation`: None for the one the model runs at there (`running_quantisation`).

    One GPU when the instance fits it and is fast enough there (packed `instances_on` to a GPU);
    otherwise, at fp16, the parallel plan (tensor or pipeline) with the best cost per throughput
    that fits and meets the latency target less `extra_ms` (the network); None when nothing does.
    """
    if quantisation is None:
        quantisation = running_quantisation(requirement, gpu, max_gpus)
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


@dataclass(frozen=True)
class Emulation:
    """What an emulated server times its batches as: a performance-model model, precision and TP degree."""

    model: str
    quantisation: str = "fp16"
    tensor_parallel: int = 1


def emulation_for(requirement: ModelRequirement, gpu: GpuSpec) -> Emulation | None:
    """How a server of `gpu` emulates the model: at its running quantisation, over the GPUs an instance spans.

    None when the performance model does not know the model.

    The performance model has no pipeline parallelism: a pipeline plan is emulated as tensor
    parallel over the same GPUs.
    """
    if (name := requirement.performance_model) is None:
        return None
    quantisation = running_quantisation(requirement, gpu)
    share = gpu_share(requirement, gpu, quantisation)
    return Emulation(name, quantisation, int(share) if share is not None and share > 1 else 1)
