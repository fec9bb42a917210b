"""The calibrated efficiencies, and the least-squares fit that produced them from the cited points.

A forward pass costs (ideal costs from `costs.UnitCosts`, E = the GPU class's efficiencies):
  fixed    = ENGINE_STEP_MS + E.inv_bandwidth * weights_ms + E.layer_hop_ms * layers * log2(TP)
  prefill  = fixed + (E.inv_prefill_flops * flops + LINK_INEFFICIENCY * comm) * N + E.attention * attn * N^2
  decode   = fixed + E.inv_bandwidth * kv_ms * K + (E.inv_decode_flops * flops + LINK_INEFFICIENCY * comm) * B
The time is linear in the unknowns, so `fit` is one weighted linear least squares (numpy lstsq) on
relative errors over CITED_POINTS; the constants below are its output, rounded to 6 significant
digits, and tests/unit/test_performance_model.py re-runs it so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from shared.performance.costs import unit_costs
from shared.performance.hardware import GPUS, Quantisation
from shared.performance.models import MODELS
from shared.performance.published import CitedPoint

# Every forward pass pays a floor (scheduling, kernel launches, sampling) however small the model.
# An assumption, not fitted: the free fit wants a slightly negative one, which is unphysical.
ENGINE_STEP_MS = 1.0
CLASSES = ("a100", "h100")
PARAMS = ("inv_bandwidth", "layer_hop_ms", "inv_prefill_flops", "inv_decode_flops", "attention")


@dataclass(frozen=True)
class Efficiency:
    """What a serving engine achieves on one GPU class, as multipliers of the ideal costs."""

    inv_bandwidth: float  # 1 / achieved share of HBM bandwidth (>= 1: the bandwidth floor)
    layer_hop_ms: float  # all-reduce latency per layer per doubling of the TP group
    inv_prefill_flops: float  # 1 / achieved share of peak FLOPs in prefill GEMMs
    inv_decode_flops: float  # per-sequence decode cost, as 1 / effective share of peak FLOPs
    attention: float  # FLOP-equivalents per layer x hidden x N^2 at peak (ideal causal attention: 2)


# fit(CITED_POINTS), rounded. Read as: the A100 reaches 1/1.128 = 89% of HBM bandwidth and 84% of
# peak in prefill GEMMs, the H100 75% and 61%; each doubling of the TP group adds 0.13 / 0.09 ms
# of all-reduce latency per layer; all-reduces reach 92% of the link. A decode step's per-sequence
# cost is engine overhead more than arithmetic (an effective 35% / 7% of peak), and the prompt's
# N^2 term is 3x / 5x ideal attention and does not shrink with TP in the measurements.
EFFICIENCY: dict[str, Efficiency] = {
    "a100": Efficiency(1.12769, 0.134686, 1.19279, 2.83138, 5.9982),
    "h100": Efficiency(1.33228, 0.0923638, 1.63176, 14.33, 10.8934),
}
LINK_INEFFICIENCY = 1.08304  # 1 / achieved share of the link's bandwidth in all-reduces


def design_row(point: CitedPoint) -> tuple[np.ndarray, float]:
    """The point's coefficients on the unknowns (5 per class, then the link), and its time less the floor."""
    hw = GPUS[point.gpu_type]
    costs = unit_costs(hw, MODELS[point.model], Quantisation.FP16, point.tensor_parallel)
    row = np.zeros(len(CLASSES) * len(PARAMS) + 1)
    base = CLASSES.index(hw.calibrated_as) * len(PARAMS)
    row[base + 1] = costs.layer_hops
    if point.kind == "prefill":
        n = float(point.tokens)
        row[base + 0] = costs.weights_ms
        row[base + 2] = costs.flops_ms_per_token * n
        row[base + 4] = costs.attention_ms_per_token2 * n * n
        row[-1] = costs.comm_ms_per_token * n
    elif point.kind == "decode":
        b = float(point.tokens)
        row[base + 0] = costs.weights_ms + costs.kv_ms_per_token * point.kv_tokens
        row[base + 3] = costs.flops_ms_per_token * b
        row[-1] = costs.comm_ms_per_token * b
    else:
        raise ValueError(f"unknown kind {point.kind!r}")
    return row, point.ms - ENGINE_STEP_MS


def fit(points: Iterable[CitedPoint]) -> tuple[dict[str, Efficiency], float]:
    """Weighted least squares on relative error: the efficiencies per class and the link's."""
    rows, targets, scales = [], [], []
    for point in points:
        row, target = design_row(point)
        rows.append(row)
        targets.append(target)
        scales.append(point.weight / point.ms)  # relative error, weighted
    scale = np.array(scales)
    solution, *_ = np.linalg.lstsq(np.array(rows) * scale[:, None], np.array(targets) * scale, rcond=None)
    per_class = {
        name: Efficiency(*(float(v) for v in solution[i * len(PARAMS) : (i + 1) * len(PARAMS)]))
        for i, name in enumerate(CLASSES)
    }
    return per_class, float(solution[-1])
