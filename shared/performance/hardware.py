"""GPU types and quantisation: the physical numbers the performance model starts from.

Datasheet figures (dense, no sparsity): memory, HBM bandwidth, fp16 tensor-core TFLOPS and the
per-direction GPU-to-GPU link that tensor parallelism's all-reduces cross. How much of each a
serving engine really achieves is calibrated (`calibration.py`), per GPU class: a GPU type names
the class whose fitted efficiencies it uses.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.performance.compat import StrEnum

GIB = 2**30
TENSOR_PARALLEL = (1, 2, 4, 8)
# Share of GPU memory kept for activations, CUDA graphs and fragmentation; the rest holds weights
# and the KV cache. vLLM's default gpu_memory_utilization is 0.9.
ACTIVATION_RESERVE = 0.10
MAX_BATCH = 256  # sequences one engine runs at once (vLLM's default max_num_seqs)


@dataclass(frozen=True)
class GpuHardware:
    """One GPU type's datasheet figures and the calibration class whose efficiencies it uses."""

    gpu_type: str
    memory_gib: float
    hbm_tb_s: float
    fp16_tflops: float
    link_gb_s: float  # per direction, to the other GPUs of a tensor-parallel group
    calibrated_as: str  # "a100" or "h100": measured; other types borrow a measured class

    @property
    def bandwidth_bytes_per_ms(self) -> float:
        """HBM bytes per millisecond at the datasheet rate."""
        return self.hbm_tb_s * 1e12 / 1e3

    @property
    def flops_per_ms(self) -> float:
        """Dense fp16 floating-point operations per millisecond at the datasheet rate."""
        return self.fp16_tflops * 1e12 / 1e3

    @property
    def link_bytes_per_ms(self) -> float:
        """Link bytes per millisecond, one direction."""
        return self.link_gb_s * 1e9 / 1e3


GPUS: dict[str, GpuHardware] = {
    # SXM parts; NVLink 3 / 4 / 2 give 600 / 900 / 300 GB/s both ways, half each way.
    "a100_80gb": GpuHardware("a100_80gb", 80.0, 2.0, 312.0, 300.0, "a100"),
    "h100_80gb": GpuHardware("h100_80gb", 80.0, 3.35, 989.0, 450.0, "h100"),
    # V100 and L4 were not measured by any cited source: they borrow the A100's efficiencies (an
    # assumption; V100 lacks FlashAttention, so its long prompts are likely slower than modelled).
    "v100_32gb": GpuHardware("v100_32gb", 32.0, 0.9, 125.0, 150.0, "a100"),
    # 24 GB GDDR6 of which 22.5 GiB is usable; no NVLink, PCIe Gen4 x16 between cards.
    "l4_24gb": GpuHardware("l4_24gb", 22.5, 0.3, 121.0, 32.0, "a100"),
}


class Quantisation(StrEnum):
    """Weight precision: fp16, or weight-only int8 / int4 (the KV cache stays fp16)."""

    FP16 = "fp16"
    INT8 = "int8"
    INT4 = "int4"


# Memory: the seed's 50 / 75 / 87.5% less than fp32 (4 bytes) is 2 / 1 / 0.5 bytes per weight.
BYTES_PER_PARAM: dict[Quantisation, float] = {Quantisation.FP16: 2.0, Quantisation.INT8: 1.0, Quantisation.INT4: 0.5}
# Compute: the seed's latency factors +5 / +15 / +25% are relative to an unquantised model, and the
# calibration measurements are fp16, so only the ratio to fp16 is applied: dequantising weights in
# the GEMMs costs int8 1.15 / 1.05 and int4 1.25 / 1.05 of fp16's compute time. Memory traffic is
# NOT stretched: decoding reads fewer bytes, so it gets faster (see docs/performance-model.md).
COMPUTE_FACTOR: dict[Quantisation, float] = {
    Quantisation.FP16: 1.0,
    Quantisation.INT8: 1.15 / 1.05,
    Quantisation.INT4: 1.25 / 1.05,
}
KV_BYTES_PER_VALUE = 2.0  # fp16 keys and values


def gpu(gpu_type: str | GpuHardware) -> GpuHardware:
    """The GPU type named `gpu_type` (a GpuHardware passes through)."""
    if isinstance(gpu_type, GpuHardware):
        return gpu_type
    try:
        return GPUS[gpu_type]
    except KeyError:
        raise ValueError(f"unknown GPU type {gpu_type!r}; known: {sorted(GPUS)}") from None
