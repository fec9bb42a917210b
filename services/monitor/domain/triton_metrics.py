"""Triton's Prometheus text, read into per-model counters and GPU gauges (pure parsing)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from prometheus_client.parser import text_string_to_metric_families

# Triton's per-model counters (summed over versions) and the field each one fills.
_COUNTERS = {
    "nv_inference_request_success": "success",
    "nv_inference_request_failure": "failure",
    "nv_inference_count": "inferences",
    "nv_inference_exec_count": "executions",
    "nv_inference_request_duration_us": "request_us",
    "nv_inference_queue_duration_us": "queue_us",
    "nv_inference_compute_input_duration_us": "compute_us",
    "nv_inference_compute_infer_duration_us": "compute_us",
    "nv_inference_compute_output_duration_us": "compute_us",
    "nv_inference_pending_request_count": "pending",
}


@dataclass(frozen=True)
class ModelCounters:
    """One model's cumulative Triton counters (and its pending gauge) on one server."""

    success: float = 0.0
    failure: float = 0.0
    inferences: float = 0.0
    executions: float = 0.0
    request_us: float = 0.0
    queue_us: float = 0.0
    compute_us: float = 0.0
    pending: float = 0.0


@dataclass(frozen=True)
class ServerSample:
    """Everything one scrape of one server said, stamped with when (seconds, caller's clock)."""

    at: float
    models: Mapping[str, ModelCounters] = field(default_factory=dict)
    gpu_utilization: float | None = None
    gpu_memory_used_fraction: float | None = None


def parse_triton_metrics(text: str, at: float) -> ServerSample:
    """Read Triton's /metrics text; raises ValueError when it is not Prometheus text."""
    models: dict[str, ModelCounters] = {}
    gpu_util: list[float] = []
    memory = {"nv_gpu_memory_used_bytes": 0.0, "nv_gpu_memory_total_bytes": 0.0}
    for family in text_string_to_metric_families(text):
        name = family.name  # counters' samples carry a `_total` suffix the parser adds
        for sample in family.samples:
            if name in _COUNTERS and "model" in sample.labels:
                model = sample.labels["model"]
                current = models.get(model, ModelCounters())
                attribute = _COUNTERS[name]
                models[model] = replace(current, **{attribute: getattr(current, attribute) + sample.value})
            elif name == "nv_gpu_utilization":
                gpu_util.append(sample.value)
            elif name in memory:
                memory[name] += sample.value
    total = memory["nv_gpu_memory_total_bytes"]
    return ServerSample(
        at=at,
        models=models,
        gpu_utilization=sum(gpu_util) / len(gpu_util) if gpu_util else None,
        gpu_memory_used_fraction=memory["nv_gpu_memory_used_bytes"] / total if total > 0 else None,
    )
