"""Ideal costs of one deployment, at datasheet rates: what the calibrated efficiencies multiply.

Both the fit (`calibration.py`) and the profiles (`profile.py`) are built from these terms, so a
fitted constant means the same thing in both. All times are milliseconds on ONE GPU of the
tensor-parallel group (the others work in parallel on their shards).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from shared.performance.hardware import BYTES_PER_PARAM, COMPUTE_FACTOR, GpuHardware, Quantisation
from shared.performance.models import ModelShape


@dataclass(frozen=True)
class UnitCosts:
    """Datasheet-rate costs of one forward pass's parts, on one GPU of the group."""

    weights_ms: float  # reading this GPU's weight shard once from HBM
    kv_ms_per_token: float  # reading one token's keys and values from HBM
    layer_hops: float  # layers x log2(TP): all-reduce latency steps per forward pass
    flops_ms_per_token: float  # the GEMMs of one token (2 FLOPs per weight), dequantisation included
    comm_ms_per_token: float  # moving one token's activations through the two all-reduces per layer
    attention_ms_per_token2: float  # causal attention's N^2 term, per layer-hidden unit (see calibration)


def unit_costs(hw: GpuHardware, shape: ModelShape, quantisation: Quantisation, tensor_parallel: int) -> UnitCosts:
    """The ideal costs of `shape` quantised to `quantisation` on `tensor_parallel` GPUs of type `hw`."""
    tp = tensor_parallel
    if tp < 1:
        raise ValueError(f"tensor parallelism must be >= 1, got {tp}")
    weight_bytes = shape.params * BYTES_PER_PARAM[quantisation] / tp
    # Ring all-reduce of the hidden state (fp16), twice per layer, moves 2(tp-1)/tp of it per GPU.
    comm_bytes = 2 * shape.layers * shape.hidden * 2 * 2 * (tp - 1) / tp
    return UnitCosts(
        weights_ms=weight_bytes / hw.bandwidth_bytes_per_ms,
        kv_ms_per_token=shape.kv_bytes_per_token(tp) / hw.bandwidth_bytes_per_ms,
        layer_hops=shape.layers * math.log2(tp),
        flops_ms_per_token=2 * shape.params / tp / hw.flops_per_ms * COMPUTE_FACTOR[quantisation],
        comm_ms_per_token=comm_bytes / hw.link_bytes_per_ms,
        attention_ms_per_token2=shape.layers * shape.hidden / hw.flops_per_ms,
    )
