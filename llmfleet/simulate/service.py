"""What one instance of each model does on each GPU type: GPUs it spans, batch bound, rates, latencies.

Everything comes from the calibrated performance model (`shared.performance.profile`) and the
allocator's planner (`gpu_share`: how many GPUs an instance spans on each type). Continuous
batching as `shared.performance.serving` models it: with B sequences in flight a request's prefill
holds the GPU alone and its output tokens cost decode steps of the batch, so an instance serves
B / (B x E[prefill] + E[output - 1] x step(B)) requests per second, taken here over the trace's
length distribution. B is bounded by the KV cache and the router's batch limits (size, token budget).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from llmfleet.simulate.catalogue import SHAPES
from llmfleet.simulate.workload import Traffic
from services.allocator.domain.fleet import FleetConfig
from services.allocator.domain.planner import gpu_share
from services.router.domain.batching import BatchLimits
from shared.performance import MAX_BATCH, Storage, cold_start_s, profile

Array = NDArray[np.float64]


@dataclass(frozen=True)
class ServiceTable:
    """Per model m and GPU type g (indices into `gpu_types`); latency samples per model."""

    gpu_types: tuple[str, ...]
    gpus: NDArray[np.int64]  # [m, g] GPUs one instance spans; 0: the model cannot run there
    mean_prefill_s: Array  # [m, g]
    mean_steps: Array  # [m] decode steps per request: output tokens - 1 (the first comes from the prefill)
    b_max: NDArray[np.int64]  # [m, g]
    step_s: Array  # [m, g, B] decode step time for B sequences (B = 0..max)
    capacity_rps: Array  # [m, g] requests/s one instance serves at B_max
    prefill_samples_s: Array  # [m, g, k]
    step_samples: Array  # [m, k] decode steps of the sampled requests
    cold_start_s: Array  # [m]

    def step_at(self, m: NDArray[np.int64], g: NDArray[np.int64], batch: Array) -> Array:
        """Decode step time of rows (m, g) at fractional batch sizes (linear between integers)."""
        top = self.step_s.shape[2] - 1
        low = np.clip(np.floor(batch), 0, top).astype(np.int64)
        high = np.minimum(low + 1, top)
        frac = np.clip(batch - low, 0.0, 1.0)
        return np.asarray(self.step_s[m, g, low] * (1 - frac) + self.step_s[m, g, high] * frac)


def instance_gpus(traffic: Traffic, fleet: FleetConfig, gpu_types: tuple[str, ...]) -> NDArray[np.int64]:
    """GPUs one instance of each model takes on each type, as the allocator's planner decides (0: none).

    The requirement is the fleet's (the model as deployed: with plans, at its quantisation).
    """
    result = np.zeros((len(traffic.models), len(gpu_types)), dtype=np.int64)
    for m, model in enumerate(traffic.models):
        requirement = fleet.models.get(model.model_id, model.requirement)
        for g, gpu_type in enumerate(gpu_types):
            share = gpu_share(requirement, fleet.gpus[gpu_type])
            # The simulated models take whole GPUs (one instance per GPU, or a parallel plan).
            result[m, g] = 0 if share is None else max(1, int(share))
    return result


def service_table(
    traffic: Traffic,
    fleet: FleetConfig,
    limits: BatchLimits,
    storage: Storage,
    quantisations: Sequence[str] | None = None,
) -> ServiceTable:
    """Every model on every GPU type of the fleet, from the performance model and the router's limits.

    `quantisations`: each model's deployed precision (None: fp16 for all); an instance spanning n
    GPUs is timed as tensor parallel over n at that precision.
    """
    gpu_types = tuple(sorted(fleet.gpus))
    gpus = instance_gpus(traffic, fleet, gpu_types)
    models, types, k = len(traffic.models), len(gpu_types), len(traffic.samples[0].prompt)
    top = min(limits.max_size, MAX_BATCH)
    mean_prefill = np.full((models, types), np.inf)
    b_max = np.zeros((models, types), dtype=np.int64)
    steps = np.zeros((models, types, top + 1))
    prefill_samples = np.full((models, types, k), np.inf)
    mean_steps = np.array([float(np.maximum(x.output - 1, 0).mean()) for x in traffic.lengths])
    batch = np.arange(top + 1, dtype=np.float64)
    for m, model in enumerate(traffic.models):
        lengths, sample = traffic.lengths[m], traffic.samples[m]
        per_request = float(lengths.prompt.mean() + lengths.output.mean())
        budget = int(limits.token_budget // per_request)
        for g, gpu_type in enumerate(gpu_types):
            if gpus[m, g] == 0:
                continue
            quantisation = "fp16" if quantisations is None else quantisations[m]
            p = profile(gpu_type, SHAPES[model.size], quantisation, int(gpus[m, g]))
            b_max[m, g] = max(0, min(top, budget, int(p.kv_capacity_tokens // per_request)))
            if b_max[m, g] == 0:
                gpus[m, g] = 0  # the weights leave no room for one sequence's KV cache
                continue
            mean_prefill[m, g] = float(p.prefill_ms_array(lengths.prompt).mean()) / 1000
            prefill_samples[m, g] = p.prefill_ms_array(sample.prompt) / 1000
            # KV held by a batch: each sequence its prompt and, on average, half its output so far.
            kv_tokens = batch * float(lengths.prompt.mean() + lengths.output.mean() / 2)
            steps[m, g] = p.decode_step_ms_array(batch, kv_tokens) / 1000
    b = np.maximum(b_max, 1)
    at_max = np.take_along_axis(steps, b[:, :, None], axis=2)[:, :, 0]
    capacity = np.where(gpus > 0, b / (b * mean_prefill + mean_steps[:, None] * at_max), 0.0)
    return ServiceTable(
        gpu_types=gpu_types,
        gpus=gpus,
        mean_prefill_s=mean_prefill,
        mean_steps=mean_steps,
        b_max=b_max,
        step_s=steps,
        capacity_rps=capacity,
        prefill_samples_s=prefill_samples,
        step_samples=np.stack([np.maximum(s.output - 1, 0) for s in traffic.samples]),
        cold_start_s=np.array([cold_start_s(SHAPES[m.size], storage) for m in traffic.models]),
    )
