"""The seed's 50 models: size, request kind, popularity, users' regions, latency target, requirement.

Popularity is Zipf over the models' ranks; sizes (7B / 13B / 20B / 70B) and kinds (code-like or
conversation-like, which picks the trace their lengths come from) are drawn with a fixed seed. The
allocator's requirement of each model is its fp16 weights, one instance per GPU, its preferred GPU
type by size, and its own latency target.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from llmfleet.simulate.options import REGION_SHARES, LatencyMeasure, Workload
from services.allocator.domain.fleet import ModelRequirement
from shared.performance import MODELS, ModelShape, planner_latency_ms

SIZES: tuple[str, ...] = ("7b", "13b", "20b", "70b")
# Models the performance model knows by name (so the allocator and the scaler size them from it, as
# `emulates` in fleet.yaml makes them): Llama-2 7B / 13B / 70B, and its 20B (gpt-3.5-turbo's assumed
# size, shaped like GPT-NeoX-20B).
SHAPES: dict[str, ModelShape] = {
    "7b": MODELS["llama-2-7b"],
    "13b": MODELS["llama-2-13b"],
    "20b": MODELS["gpt-3.5-turbo"],
    "70b": MODELS["llama-2-70b"],
}
SIZE_WEIGHTS: tuple[float, ...] = (0.3, 0.3, 0.2, 0.2)
KINDS: tuple[str, ...] = ("conv", "code")
KIND_WEIGHTS: tuple[float, ...] = (0.65, 0.35)
WEIGHTS_GB: dict[str, float] = {size: shape.params * 2 / 1e9 for size, shape in SHAPES.items()}  # fp16
PREFERRED_GPU: dict[str, str] = {"7b": "v100_32gb", "13b": "a100_80gb", "20b": "a100_80gb", "70b": "h100_80gb"}
# What users of a model may wait: to the first token (interactive code completion tighter than chat),
# or for the whole answer.
TTFT_TARGET_MS: dict[tuple[str, str], float] = {
    ("7b", "code"): 500.0, ("13b", "code"): 800.0, ("20b", "code"): 1000.0, ("70b", "code"): 2000.0,
    ("7b", "conv"): 1000.0, ("13b", "conv"): 1500.0, ("20b", "conv"): 2000.0, ("70b", "conv"): 3000.0,
}  # fmt: skip
E2E_TARGET_MS: dict[str, float] = {"7b": 4000.0, "13b": 6000.0, "20b": 7000.0, "70b": 10_000.0}
REGION_CONCENTRATION = 20.0  # Dirichlet concentration around the regions' shares: models differ a little


@dataclass(frozen=True)
class SimModel:
    """One model of the simulated platform."""

    model_id: str
    size: str
    kind: str
    share: float  # of all requests
    region_shares: tuple[float, ...]
    target_ms: float
    requirement: ModelRequirement


def zipf_shares(models: int, exponent: float) -> np.ndarray:
    """Request shares of ranks 1..models under Zipf(exponent), summing to one."""
    weights = np.arange(1, models + 1, dtype=np.float64) ** -exponent
    return np.asarray(weights / weights.sum())


def target_ms(size: str, kind: str, measure: LatencyMeasure) -> float:
    """A model's own latency target for the measure the run uses."""
    return TTFT_TARGET_MS[(size, kind)] if measure is LatencyMeasure.TTFT else E2E_TARGET_MS[size]


def requirement(model_id: str, size: str) -> ModelRequirement:
    """The allocator's view of a model: fp16 weights, one instance per GPU (or a parallel plan).

    The allocator's latency is a whole request's (the performance model's reference request), so
    its target is the model's end-to-end one, whatever the run's SLO measures. `emulates` names the
    performance model's model, as fleet.yaml does; memory and latency then come from it.
    """
    return ModelRequirement(
        model_id=model_id,
        min_memory_gb=WEIGHTS_GB[size],
        preferred_gpu=PREFERRED_GPU[size],
        instances_per_gpu=1,
        latency_ms=planner_latency_ms(SHAPES[size].name),  # for the record: `emulates` takes over
        latency_target_ms=E2E_TARGET_MS[size],
        emulates=SHAPES[size].name,
    )


def catalogue(workload: Workload, measure: LatencyMeasure, seed: int) -> list[SimModel]:
    """The seed's models, reproducibly."""
    rng = np.random.default_rng(seed)
    shares = zipf_shares(workload.models, workload.zipf)
    sizes = rng.choice(len(SIZES), size=workload.models, p=SIZE_WEIGHTS)
    kinds = rng.choice(len(KINDS), size=workload.models, p=KIND_WEIGHTS)
    regional = rng.dirichlet(np.asarray(REGION_SHARES) * REGION_CONCENTRATION, size=workload.models)
    result = []
    for rank in range(workload.models):
        size, kind = SIZES[sizes[rank]], KINDS[kinds[rank]]
        model_id = f"m{rank + 1:02d}-{kind}-{size}"
        target = target_ms(size, kind, measure)
        result.append(
            SimModel(
                model_id,
                size,
                kind,
                float(shares[rank]),
                tuple(float(x) for x in regional[rank]),
                target,
                requirement(model_id, size),
            )
        )
    return result
