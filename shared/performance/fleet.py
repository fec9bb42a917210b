"""Per-model, per-GPU figures for the planner, the scaler and fleet.yaml, from the calibrated model.

The reference request is the Azure 2023 conversation trace's median (1,020 prompt and 129 output
tokens), rounded to 1,024 and 128; the reference target is the platform's 2 s p95.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from shared.performance.coldstart import Storage, cold_start_s
from shared.performance.hardware import ACTIVATION_RESERVE, BYTES_PER_PARAM, GIB, TENSOR_PARALLEL, Quantisation
from shared.performance.models import FLEET_MODELS, ModelShape, model
from shared.performance.profile import Profile, profile
from shared.performance.serving import Throughput, request_latency_ms, throughput_at

PROMPT_TOKENS = 1024
OUTPUT_TOKENS = 128
LATENCY_TARGET_MS = 2000.0
FLEET_GPUS = ("h100_80gb", "a100_80gb", "v100_32gb", "l4_24gb")
# A server must hold at least this many reference requests' KV cache to count as deployable: below
# that, the KV cache rather than the GPU would set its throughput, and batching would barely pay.
MIN_BATCH = 8


@dataclass(frozen=True)
class FleetFigure:
    """The best way to serve one model on one GPU type, and what it gives."""

    model: str
    gpu_type: str
    quantisation: Quantisation
    tensor_parallel: int
    weights_gib: float
    # the instance (all its GPUs together): weights + KV of MIN_BATCH reference requests, / (1 - reserve)
    min_memory_gib: float
    kv_capacity_tokens: int
    single_request_ms: float  # one reference request alone on the server
    ttft_ms: float
    target_ms: float  # the target the throughput is at (see figure())
    meets_target: bool  # False: not even one request alone meets LATENCY_TARGET_MS
    throughput: Throughput
    cold_start_s: Mapping[str, float] = field(default_factory=dict)  # by Storage value

    @property
    def requests_per_hour(self) -> float:
        """Requests one instance (all its GPUs) serves per hour at the target."""
        return self.throughput.requests_per_hour


def instance_memory_gib(
    name: str | ModelShape,
    quantisation: Quantisation | str = Quantisation.FP16,
    tensor_parallel: int = 1,
    prompt_tokens: int = PROMPT_TOKENS,
    output_tokens: int = OUTPUT_TOKENS,
) -> float:
    """Memory one instance needs, all its GPUs together: its weights and the KV cache of MIN_BATCH
    reference requests, over the share a GPU keeps for activations."""
    shape = model(name)
    weights = shape.params * BYTES_PER_PARAM[Quantisation(quantisation)]
    # kv_bytes_per_token is one GPU's: a GQA model at high TP keeps a copy of a head on each GPU.
    kv = MIN_BATCH * (prompt_tokens + output_tokens) * shape.kv_bytes_per_token(tensor_parallel) * tensor_parallel
    return (weights + kv) / GIB / (1 - ACTIVATION_RESERVE)


def serving_target(
    p: Profile, prompt_tokens: int, output_tokens: int, latency_target_ms: float = LATENCY_TARGET_MS
) -> tuple[float, bool]:
    """The target a deployment's throughput is taken at, and whether one request alone meets the wanted one.

    It is `latency_target_ms` when one request alone meets it; otherwise twice that request's
    latency: what the deployment serves while batching at most doubles a request's latency.
    """
    single = request_latency_ms(p, prompt_tokens, output_tokens)
    meets = single <= latency_target_ms
    return (latency_target_ms if meets else 2 * single), meets


def figure(
    name: str,
    gpu_type: str,
    quantisation: Quantisation | str = Quantisation.FP16,
    tensor_parallel: int = 1,
    prompt_tokens: int = PROMPT_TOKENS,
    output_tokens: int = OUTPUT_TOKENS,
    latency_target_ms: float = LATENCY_TARGET_MS,
) -> FleetFigure | None:
    """The figure of one deployment, or None when it cannot hold MIN_BATCH reference requests.

    When even one request alone misses the target, the throughput is given at twice the
    single-request latency instead (and meets_target is False), so the scaler still gets a
    capacity: what the deployment serves while batching at most doubles a request's latency.
    """
    p = profile(gpu_type, name, quantisation, tensor_parallel)
    if p.kv_capacity_tokens < MIN_BATCH * (prompt_tokens + output_tokens):
        return None
    single = request_latency_ms(p, prompt_tokens, output_tokens)
    target, meets = serving_target(p, prompt_tokens, output_tokens, latency_target_ms)
    shape = model(name)
    return FleetFigure(
        model=shape.name,
        gpu_type=p.gpu_type,
        quantisation=p.quantisation,
        tensor_parallel=tensor_parallel,
        weights_gib=p.weights_gib,
        min_memory_gib=instance_memory_gib(shape, p.quantisation, tensor_parallel, prompt_tokens, output_tokens),
        kv_capacity_tokens=p.kv_capacity_tokens,
        single_request_ms=single,
        ttft_ms=p.prefill_ms(prompt_tokens),
        target_ms=target,
        meets_target=meets,
        throughput=throughput_at(p, prompt_tokens, output_tokens, target),
        cold_start_s={s.value: cold_start_s(shape, s, p.quantisation) for s in Storage},
    )


def best_deployment(
    name: str,
    gpu_type: str,
    quantisation: Quantisation | str = Quantisation.FP16,
    prompt_tokens: int = PROMPT_TOKENS,
    output_tokens: int = OUTPUT_TOKENS,
    latency_target_ms: float = LATENCY_TARGET_MS,
) -> FleetFigure | None:
    """The tensor-parallel degree serving the most requests per GPU (ties: fewer GPUs), or None.

    Deployments that meet the target beat those that do not.
    """
    candidates = [
        f
        for tp in TENSOR_PARALLEL
        if (f := figure(name, gpu_type, quantisation, tp, prompt_tokens, output_tokens, latency_target_ms))
    ]
    if not candidates:
        return None
    return max(candidates, key=lambda f: (f.meets_target, f.throughput.requests_per_gpu_hour, -f.tensor_parallel))


def figures_for_fleet(
    models: Iterable[str] = FLEET_MODELS,
    gpus: Iterable[str] = FLEET_GPUS,
    quantisation: Quantisation | str = Quantisation.FP16,
    prompt_tokens: int = PROMPT_TOKENS,
    output_tokens: int = OUTPUT_TOKENS,
    latency_target_ms: float = LATENCY_TARGET_MS,
) -> dict[str, dict[str, FleetFigure | None]]:
    """Model -> GPU type -> its best deployment's figure (None where it cannot be deployed)."""
    gpu_list = list(gpus)
    return {
        name: {
            g: best_deployment(name, g, quantisation, prompt_tokens, output_tokens, latency_target_ms) for g in gpu_list
        }
        for name in models
    }


def planner_latency_ms(name: str, prompt_tokens: int = PROMPT_TOKENS, output_tokens: int = OUTPUT_TOKENS) -> float:
    """fleet.yaml's `latency_ms`: one reference request on ONE H100 at fp16, as if the model fitted.

    The planner stretches this by its own rules (GPU speed, quantisation, TP); for models that do
    not fit one GPU, prefer the figures of `best_deployment`, which the model computes directly.
    """
    return request_latency_ms(profile("h100_80gb", name), prompt_tokens, output_tokens)


def relative_speed(gpu_type: str, name: str = "llama-2-13b", reference_gpu: str = "h100_80gb") -> float:
    """How fast `gpu_type` serves one reference request of `name`, relative to `reference_gpu` (1.0)."""
    mine = request_latency_ms(profile(gpu_type, name), PROMPT_TOKENS, OUTPUT_TOKENS)
    return request_latency_ms(profile(reference_gpu, name), PROMPT_TOKENS, OUTPUT_TOKENS) / mine
