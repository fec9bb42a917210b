"""The logical fleet: GPU types, pools per region and type, prices and model requirements.

A model the GPU performance model knows (`emulates`) takes its memory and latency from it
(`domain/performance.py`); for any other, the config's `min_memory_gb` and `latency_ms` are
stretched by the seed's invented factors (GPU `relative_speed`, QUANT_MEMORY, QUANT_LATENCY).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from services.allocator.domain import performance


class PricingClass(StrEnum):
    ON_DEMAND = "on_demand"
    SPOT = "spot"
    RESERVED = "reserved"


# For models the performance model does not know: fp16 is the footprint a requirement states;
# int8/int4 halve and quarter it (the memory reductions 0.5 / 0.75 / 0.875 are against
# fp32) at the cost of more latency.
QUANT_MEMORY: dict[str, float] = {"fp16": 1.0, "int8": 0.5, "int4": 0.25}
QUANT_LATENCY: dict[str, float] = {"fp16": 1.05, "int8": 1.15, "int4": 1.25}


@dataclass(frozen=True)
class GpuSpec:
    """One GPU type: memory, reference on-demand price and speed relative to an H100.

    The speed only stretches the latency of models the performance model does not know.
    """

    gpu_type: str
    memory_gb: float
    on_demand_per_hour: float
    relative_speed: float = 1.0


@dataclass(frozen=True)
class Pool:
    """The GPUs of one type in one region; `reserved` are held back, the rest is allocated."""

    region: str
    gpu_type: str
    total: int
    available: int
    reserved: int = 0
    pricing_class: PricingClass = PricingClass.ON_DEMAND

    def __post_init__(self) -> None:
        if self.available < 0 or self.reserved < 0 or self.available + self.reserved > self.total:
            raise ValueError(f"inconsistent pool {self.region}/{self.gpu_type}: {self}")

    @property
    def allocated(self) -> int:
        """GPUs currently given to servers."""
        return self.total - self.available - self.reserved

    def take(self, gpus: int) -> Pool:
        """The pool after `gpus` more are allocated; refuses to go below zero."""
        if gpus < 0 or gpus > self.available:
            raise ValueError(f"cannot take {gpus} of {self.available} free {self.region}/{self.gpu_type}")
        return replace(self, available=self.available - gpus)

    def give_back(self, gpus: int) -> Pool:
        """The pool after `gpus` allocated ones are returned."""
        if gpus < 0 or gpus > self.allocated:
            raise ValueError(f"cannot return {gpus} of {self.allocated} allocated {self.region}/{self.gpu_type}")
        return replace(self, available=self.available + gpus)


@dataclass(frozen=True)
class ModelRequirement:
    """What one model needs: memory per instance (fp16), preferred GPU, packing, latency.

    With `emulates` (a model the performance model knows) memory and latency come from the
    performance model on every GPU type it knows; `min_memory_gb` and `latency_ms` then hold its
    fp16 figures on one GPU (an H100 for the latency), for the record and for other GPU types.
    """

    model_id: str
    min_memory_gb: float
    preferred_gpu: str
    instances_per_gpu: int = 1
    triton_model: str | None = None
    latency_ms: float = 100.0
    latency_target_ms: float | None = None
    quantisations: tuple[str, ...] = ("fp16",)
    emulates: str | None = None

    @property
    def repository_name(self) -> str:
        """The model's name in a Triton repository."""
        return self.triton_model or self.model_id

    @property
    def performance_model(self) -> str | None:
        """The performance model's name for this model, when it knows it."""
        return self.emulates if performance.known_model(self.emulates) else None

    def memory_gb(self, quantisation: str = "fp16") -> float:
        """Memory of one instance on one GPU at `quantisation`."""
        if (name := self.performance_model) is not None:
            return performance.memory_gb(name, quantisation)
        return self.min_memory_gb * QUANT_MEMORY[quantisation]

    def instances_on(self, gpu: GpuSpec, quantisation: str = "fp16") -> int:
        """Instances one GPU of `gpu` holds: never more than on the preferred type, 0 if it does not fit."""
        fits = math.floor(gpu.memory_gb / max(self.memory_gb(quantisation), 1e-9) + 1e-9)
        return max(0, min(self.instances_per_gpu, fits))

    def latency_on(self, gpu: GpuSpec, quantisation: str = "fp16") -> float:
        """Latency of one request on one GPU of `gpu`: the performance model's, else the H100 figure stretched."""
        if (name := self.performance_model) is not None and performance.known_gpu(gpu.gpu_type):
            return performance.latency_ms(name, gpu.gpu_type, quantisation)
        return self.latency_ms / gpu.relative_speed * QUANT_LATENCY[quantisation]

    def meets_latency(self, gpu: GpuSpec, quantisation: str = "fp16", extra_ms: float = 0.0) -> bool:
        """True when there is no target or the latency on `gpu` (plus `extra_ms`) is within it."""
        return self.latency_target_ms is None or self.latency_on(gpu, quantisation) + extra_ms <= self.latency_target_ms


@dataclass(frozen=True)
class FleetConfig:
    """The seed: GPU types, region price multipliers, pools and model requirements."""

    gpus: Mapping[str, GpuSpec]
    region_multipliers: Mapping[str, float]
    pools: tuple[Pool, ...]
    models: Mapping[str, ModelRequirement]
    spot_factor: float = 0.35
    reserved_factor: float = 0.6
    region_rtt_ms: Mapping[tuple[str, str], float] = field(default_factory=dict)

    def price(self, region: str, gpu_type: str, pricing_class: PricingClass = PricingClass.ON_DEMAND) -> float:
        """$/h of one GPU of `gpu_type` in `region` under `pricing_class`."""
        base = self.gpus[gpu_type].on_demand_per_hour * self.region_multipliers.get(region, 1.0)
        factor = {PricingClass.SPOT: self.spot_factor, PricingClass.RESERVED: self.reserved_factor}
        return round(base * factor.get(pricing_class, 1.0), 4)

    def rtt_ms(self, user_region: str, region: str) -> float:
        """Network round trip added when `user_region`'s demand is served from `region`."""
        if user_region == region:
            return 0.0
        return self.region_rtt_ms.get((user_region, region), self.region_rtt_ms.get((region, user_region), 150.0))


def _emulated(model_id: str, spec: Mapping[str, Any]) -> str | None:
    """The performance model's model: `emulates`, else the model id when it knows it; `emulates: null`: none."""
    if "emulates" not in spec:
        return model_id if performance.known_model(model_id) else None
    name = spec["emulates"]
    if name is not None and not performance.known_model(str(name)):
        raise ValueError(f"model {model_id}: the performance model does not know {name!r} (emulates)")
    return None if name is None else str(name)


def _requirement(model_id: str, spec: Mapping[str, Any]) -> ModelRequirement:
    """One model of the config; a known model's memory and latency are the performance model's, not the file's."""
    emulates = _emulated(model_id, spec)
    if emulates is not None:
        memory, latency = performance.memory_gb(emulates), performance.latency_ms(emulates, "h100_80gb")
    else:
        memory, latency = float(spec["min_memory_gb"]), float(spec.get("latency_ms", 100.0))
    return ModelRequirement(
        model_id=model_id,
        min_memory_gb=memory,
        preferred_gpu=str(spec["preferred_gpu"]),
        instances_per_gpu=int(spec.get("instances_per_gpu", 1)),
        triton_model=spec.get("triton_model"),
        latency_ms=latency,
        latency_target_ms=spec.get("latency_target_ms"),
        quantisations=tuple(spec.get("quantisations", ("fp16",))),
        emulates=emulates,
    )


def fleet_from_mapping(data: Mapping[str, Any]) -> FleetConfig:
    """Build the fleet from a parsed config (see services/allocator/fleet.yaml)."""
    gpus = {
        name: GpuSpec(name, float(s["memory_gb"]), float(s["on_demand_per_hour"]), float(s.get("relative_speed", 1.0)))
        for name, s in data["gpu_types"].items()
    }
    pools = tuple(
        Pool(
            region,
            gpu_type,
            int(counts[0]),
            int(counts[1]),
            int(counts[2]),
            PricingClass(counts[3] if len(counts) > 3 else data.get("pricing_class", "on_demand")),
        )
        for region, by_type in data["pools"].items()
        for gpu_type, counts in by_type.items()
    )
    unknown = {p.gpu_type for p in pools} - gpus.keys()
    if unknown:
        raise ValueError(f"pools name unknown GPU types: {sorted(unknown)}")
    return FleetConfig(
        gpus=gpus,
        region_multipliers={k: float(v) for k, v in data.get("regions", {}).items()},
        pools=pools,
        models={model_id: _requirement(model_id, spec) for model_id, spec in data.get("models", {}).items()},
        spot_factor=float(data.get("spot_factor", 0.35)),
        reserved_factor=float(data.get("reserved_factor", 0.6)),
    )
