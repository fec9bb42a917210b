"""Request latency and throughput at a latency target: what a server of one profile can serve.

The steady state of continuous batching with `batch` slots: a request's prompt is prefilled when
a slot frees, then it decodes output - 1 steps (its first token comes from the prefill) in a batch
of `batch` sequences; while it decodes, the other batch - 1 slots turn over about once each, so
their prefills interrupt it once each. Its end-to-end latency is therefore
    latency(B) = B * prefill(N) + (T - 1) * step(B, B * (N + T/2))
which is linear in B, and the server completes B requests per latency(B). Throughput B/latency(B)
grows with B, so the best batch under a target is the largest that meets it, bounded by the KV
cache (B * (N + T) tokens must fit) and the engine's batch limit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from shared.performance.hardware import MAX_BATCH
from shared.performance.profile import Profile


@dataclass(frozen=True)
class Throughput:
    """One operating point of a server: its batch, a request's latency there, and what it serves."""

    batch: int  # concurrent sequences; 0 when no batch meets the target (or nothing fits)
    latency_ms: float  # end-to-end latency of a request at this batch
    ttft_ms: float  # the request's own prefill (queueing for a slot not included)
    requests_per_s: float
    output_tokens_per_s: float
    limited_by: str  # "latency", "kv_cache", "max_batch", or "infeasible"
    gpus: int  # GPUs of the deployment (its tensor-parallel degree)

    @property
    def requests_per_hour(self) -> float:
        """Requests one server (instance) completes in an hour at this point."""
        return self.requests_per_s * 3600.0

    @property
    def requests_per_gpu_hour(self) -> float:
        """Requests per hour per GPU of the deployment."""
        return self.requests_per_hour / self.gpus


def _slope(p: Profile, prompt_tokens: int, output_tokens: int) -> tuple[float, float]:
    """latency(B) = intercept + slope * B, in ms."""
    steps = max(output_tokens - 1, 0)
    mean_context = prompt_tokens + output_tokens / 2.0
    intercept = steps * p.decode_a
    slope = p.prefill_ms(prompt_tokens) + steps * (p.decode_b * mean_context + p.decode_c)
    return intercept, slope


def request_latency_ms(p: Profile, prompt_tokens: int, output_tokens: int, batch: int = 1) -> float:
    """End-to-end latency of one request of `prompt_tokens` in, `output_tokens` out, among `batch`."""
    intercept, slope = _slope(p, prompt_tokens, output_tokens)
    return intercept + slope * max(batch, 1)


def kv_batch_limit(p: Profile, prompt_tokens: int, output_tokens: int) -> int:
    """The most such requests whose KV cache (prompt + output each) fits at once."""
    return p.kv_capacity_tokens // max(prompt_tokens + output_tokens, 1)


def operating_point(p: Profile, prompt_tokens: int, output_tokens: int, batch: int, limited_by: str) -> Throughput:
    """The server running `batch` such requests at once (no checks: see throughput_at)."""
    if batch < 1:
        return Throughput(0, math.inf, p.prefill_ms(prompt_tokens), 0.0, 0.0, limited_by, p.tensor_parallel)
    latency = request_latency_ms(p, prompt_tokens, output_tokens, batch)
    rate = batch / latency * 1000.0 if latency > 0 else math.inf
    return Throughput(
        batch, latency, p.prefill_ms(prompt_tokens), rate, rate * output_tokens, limited_by, p.tensor_parallel
    )


def throughput_at(
    p: Profile, prompt_tokens: int, output_tokens: int, latency_target_ms: float, max_batch: int = MAX_BATCH
) -> Throughput:
    """The most a server serves of such requests with each one's latency within `latency_target_ms`."""
    intercept, slope = _slope(p, prompt_tokens, output_tokens)
    by_latency = math.floor((latency_target_ms - intercept) / slope + 1e-9) if slope > 0 else max_batch
    by_kv = kv_batch_limit(p, prompt_tokens, output_tokens)
    limits = {"latency": by_latency, "kv_cache": by_kv, "max_batch": max_batch}
    binding = min(limits, key=lambda name: limits[name])  # ties: latency, then KV, then the engine
    batch = limits[binding]
    return operating_point(p, prompt_tokens, output_tokens, batch, binding if batch >= 1 else "infeasible")


def capacity_rph(
    p: Profile, prompt_tokens: int, output_tokens: int, latency_target_ms: float, headroom: float = 1.0
) -> float:
    """Requests per hour one instance serves within the target, times `headroom` (e.g. 0.8 for 80% busy)."""
    return throughput_at(p, prompt_tokens, output_tokens, latency_target_ms).requests_per_hour * headroom
