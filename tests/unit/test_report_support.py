"""Hand-built replay runs for the report's unit tests (real event classes, no I/O); holds no tests itself."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from llmfleet.run_data import ObservedEvent, ReplayRun, RequestRecord, RunConfig
from shared.events import Event, ModelLoaded, ScalingActionRequested, ServerAllocated


def config(**overrides: Any) -> RunConfig:
    """A plausible run configuration."""
    fields: dict[str, Any] = {
        "trace": "azure-llm-2023",
        "models": {"code": "AzureLLMInferenceTrace_code.csv", "conv": "AzureLLMInferenceTrace_conv.csv"},
        "window_start_s": 0.0,
        "trace_span_s": 600.0,
        "compression": 6.0,
        "duration_s": 100.0,
        "max_tokens_cap": 64,
        "regions": {"us-east-1": 0.7, "eu-west-1": 0.3},
        "policies": {"scaling": "predictive", "batching": "throughput", "routing": "balanced"},
        "requests_per_instance_hour": 3600.0,
        "machine": "2-core test box",
    }
    fields.update(overrides)
    return RunConfig(**fields)


def record(
    request_id: str,
    status: str | None = "ok",
    *,
    model: str = "code",
    sent: float | None = 0.0,
    latency: float | None = 0.5,
    tokens_out: int = 10,
    prompt: int = 20,
    reason: str | None = None,
    router_ms: float | None = None,
) -> RequestRecord:
    """One request; completed `latency` seconds after it was sent when it has a status."""
    completed = None if sent is None or status is None or latency is None else sent + latency
    return RequestRecord(
        request_id=request_id,
        model_id=model,
        region="us-east-1",
        trace_offset_s=0.0,
        scheduled_s=sent or 0.0,
        prompt_tokens=prompt,
        trace_output_tokens=tokens_out,
        max_tokens=max(1, tokens_out),
        sent_s=sent,
        completed_s=completed,
        status=status,
        reason=reason,
        server_id="s1" if status == "ok" else None,
        tokens_out=tokens_out if status == "ok" else 0,
        router_total_ms=router_ms,
    )


def seen(at_s: float, event: Event, topic: str = "fleet.test.v1") -> ObservedEvent:
    """An event observed at `at_s` on the replay clock."""
    return ObservedEvent(at_s=at_s, topic=topic, event=event)


def run(
    records: list[RequestRecord],
    events: list[ObservedEvent] | None = None,
    *,
    send_wall_s: float = 60.0,
    drain_wall_s: float = 40.0,
    **config_overrides: Any,
) -> ReplayRun:
    """A replay run of these records and events."""
    return ReplayRun(
        config=config(**config_overrides),
        started_at=datetime(2026, 11, 27, 23, 0, tzinfo=UTC),
        records=records,
        events=events or [],
        send_wall_s=send_wall_s,
        drain_wall_s=drain_wall_s,
        notes=["emulated GPUs"],
    )


def allocated(server: str, cost_per_hour: float, region: str = "us-east-1") -> ServerAllocated:
    """A server allocated at `cost_per_hour`."""
    return ServerAllocated(
        source="allocator",
        server_id=server,
        endpoint="127.0.0.1:9000",
        metrics_url="http://127.0.0.1:9002/metrics",
        region=region,
        gpu_type="a100",
        cost_per_hour=cost_per_hour,
    )


def loaded(server: str, model: str, instances: int | None) -> ModelLoaded:
    """A model loaded on a server with this many instances now."""
    return ModelLoaded(source="allocator", server_id=server, model_id=model, region="us-east-1", instances=instances)


def action(kind: str, model: str = "code", current: int = 0, target: int = 1) -> ScalingActionRequested:
    """A scaling action."""
    return ScalingActionRequested(
        source="scaler",
        action_id=f"act-{kind}-{model}-{target}",
        model_id=model,
        region="us-east-1",
        kind=kind,  # type: ignore[arg-type]
        current_instances=current,
        target_instances=target,
        reason="test",
        rule="utilization_high",
        policy="reactive",
    )
