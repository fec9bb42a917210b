"""A deployment's calibrated costs: prefill a + b*N + c*N^2, decode step a + b*K + c*B, KV capacity.

Build one `Profile` per GPU type x model x quantisation x tensor parallelism with `profile()` and
keep it: its methods are plain float arithmetic (and numpy for arrays), cheap enough for a
simulator to call per batch. All times are milliseconds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from shared.performance.calibration import EFFICIENCY, ENGINE_STEP_MS, LINK_INEFFICIENCY
from shared.performance.costs import unit_costs
from shared.performance.hardware import (
    ACTIVATION_RESERVE,
    BYTES_PER_PARAM,
    GIB,
    GpuHardware,
    Quantisation,
    gpu,
)
from shared.performance.models import ModelShape, model

UNBOUNDED_KV_TOKENS = 10**12  # a model without a KV cache (echo) is never bounded by it


@dataclass(frozen=True)
class Profile:
    """The cost coefficients of one deployment, and the memory it needs and leaves for the KV cache."""

    gpu_type: str
    model: str
    quantisation: Quantisation
    tensor_parallel: int
    prefill_a: float  # ms
    prefill_b: float  # ms per prompt token
    prefill_c: float  # ms per prompt token squared
    decode_a: float  # ms per step
    decode_b: float  # ms per KV-cache token in the batch
    decode_c: float  # ms per sequence in the batch
    floor_weights_ms: float  # the bandwidth floor: weights read once at the datasheet rate
    floor_kv_ms_per_token: float  # ... and one KV token
    weights_gib: float  # all GPUs of the group together
    kv_capacity_tokens: int  # KV tokens the group holds after weights and reserve; 0: does not fit

    @property
    def fits(self) -> bool:
        """True when the weights fit in the group's memory with room for some KV cache."""
        return self.kv_capacity_tokens > 0

    def prefill_ms(self, tokens: float) -> float:
        """One prompt of `tokens` tokens, alone in its forward pass."""
        return self.prefill_a + (self.prefill_b + self.prefill_c * tokens) * tokens if tokens > 0 else 0.0

    def prefill_batch_ms(self, lengths: Sequence[int] | np.ndarray) -> float:
        """Several prompts in ONE forward pass: the fixed cost once, attention per prompt (sum of N^2)."""
        arr = np.asarray(lengths, dtype=float)
        if arr.size == 0 or not arr.any():
            return 0.0
        return float(self.prefill_a + self.prefill_b * arr.sum() + self.prefill_c * (arr * arr).sum())

    def prefill_ms_array(self, tokens: np.ndarray) -> np.ndarray:
        """`prefill_ms` of each prompt length in `tokens` (vectorised)."""
        arr = np.asarray(tokens, dtype=float)
        return np.where(arr > 0, self.prefill_a + (self.prefill_b + self.prefill_c * arr) * arr, 0.0)

    def decode_step_ms(self, batch: int, kv_tokens: float) -> float:
        """One decode step generating a token for each of `batch` sequences holding `kv_tokens` in all."""
        return self.decode_a + self.decode_b * kv_tokens + self.decode_c * batch if batch > 0 else 0.0

    def decode_step_ms_array(self, batch: np.ndarray, kv_tokens: np.ndarray) -> np.ndarray:
        """`decode_step_ms` element-wise over arrays of batch sizes and KV tokens."""
        b, kv = np.asarray(batch, dtype=float), np.asarray(kv_tokens, dtype=float)
        return np.where(b > 0, self.decode_a + self.decode_b * kv + self.decode_c * b, 0.0)

    def static_batch_ms(self, prompt_lengths: Sequence[int] | np.ndarray, output_tokens: int) -> float:
        """A static batch: its prompts prefilled together, then every row decodes until `output_tokens`.

        The first token comes out of the prefill, so there are output_tokens - 1 decode steps, each
        over all rows (no row leaves early: tinylm's batching); step s reads sum(N) + B*s KV tokens.
        """
        arr = np.asarray(prompt_lengths, dtype=float)
        rows, steps = arr.size, max(int(output_tokens) - 1, 0)
        if rows == 0:
            return 0.0
        kv = steps * arr.sum() + rows * steps * (steps + 1) / 2  # sum over steps of the KV tokens read
        decode = steps * (self.decode_a + self.decode_c * rows) + self.decode_b * kv
        return self.prefill_batch_ms(arr) + float(decode)


def kv_capacity_tokens(hw: GpuHardware, shape: ModelShape, quantisation: Quantisation, tensor_parallel: int) -> int:
    """KV-cache tokens one tensor-parallel group holds: each GPU's memory less reserve and weight shard."""
    shard = shape.params * BYTES_PER_PARAM[quantisation] / tensor_parallel
    free = hw.memory_gib * GIB * (1 - ACTIVATION_RESERVE) - shard
    if free <= 0:
        return 0
    per_token = shape.kv_bytes_per_token(tensor_parallel)
    return UNBOUNDED_KV_TOKENS if per_token == 0 else math.floor(free / per_token)


def profile(
    gpu_type: str | GpuHardware,
    model_name: str | ModelShape,
    quantisation: Quantisation | str = Quantisation.FP16,
    tensor_parallel: int = 1,
) -> Profile:
    """The calibrated profile of `model_name` at `quantisation` on `tensor_parallel` GPUs of `gpu_type`."""
    hw, shape, quant = gpu(gpu_type), model(model_name), Quantisation(quantisation)
    costs = unit_costs(hw, shape, quant, tensor_parallel)
    eff = EFFICIENCY[hw.calibrated_as]
    fixed = ENGINE_STEP_MS + eff.inv_bandwidth * costs.weights_ms + eff.layer_hop_ms * costs.layer_hops
    comm = LINK_INEFFICIENCY * costs.comm_ms_per_token
    return Profile(
        gpu_type=hw.gpu_type,
        model=shape.name,
        quantisation=quant,
        tensor_parallel=tensor_parallel,
        prefill_a=fixed,
        prefill_b=eff.inv_prefill_flops * costs.flops_ms_per_token + comm,
        prefill_c=eff.attention * costs.attention_ms_per_token2,
        decode_a=fixed,
        decode_b=eff.inv_bandwidth * costs.kv_ms_per_token,
        decode_c=eff.inv_decode_flops * costs.flops_ms_per_token + comm,
        floor_weights_ms=costs.weights_ms,
        floor_kv_ms_per_token=costs.kv_ms_per_token,
        weights_gib=shape.params * BYTES_PER_PARAM[quant] / GIB,
        kv_capacity_tokens=kv_capacity_tokens(hw, shape, quant, tensor_parallel),
    )
