"""What one replay run records: every request sent, every platform event seen, and the run's settings.

The report (`llmfleet.report`) is computed from these alone, so every figure in it was measured in
the run it describes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.events import Event


@dataclass
class RequestRecord:
    """One request of the replay and, once it came back, its result (times in s since replay start)."""

    request_id: str
    model_id: str
    region: str
    trace_offset_s: float  # when the request arrived in the original trace, from the window start
    scheduled_s: float  # when the replay meant to send it (trace offset / compression)
    prompt_tokens: int  # the trace's context tokens (the synthesised prompt has this many bytes)
    trace_output_tokens: int  # the trace's generated tokens, before the cap
    max_tokens: int  # what was asked for: min(trace output, cap), at least 1
    sent_s: float | None = None
    completed_s: float | None = None
    status: str | None = None  # ok / rejected / failed; None: no result came back
    reason: str | None = None
    server_id: str | None = None
    tokens_out: int = 0
    router_total_ms: float | None = None  # the router's own view (queued + batched + inference)

    @property
    def latency_s(self) -> float | None:
        """End-to-end latency seen by the sender: sent to the result read back from Kafka."""
        if self.sent_s is None or self.completed_s is None:
            return None
        return self.completed_s - self.sent_s


@dataclass(frozen=True)
class ObservedEvent:
    """A platform event read from Kafka during the run, stamped on the replay's clock."""

    at_s: float
    topic: str
    event: Event


@dataclass(frozen=True)
class RunConfig:
    """How the run was set up: what was replayed, how fast, and the platform's policies."""

    trace: str  # e.g. "azure-llm-2023"
    models: dict[str, str]  # model id -> trace file it replays
    window_start_s: float  # offset into the trace where the replay starts
    trace_span_s: float  # seconds of trace replayed
    compression: float  # trace seconds per wall second
    duration_s: float  # wall seconds of sending
    max_tokens_cap: int
    regions: dict[str, float]  # user region -> share of requests
    policies: dict[str, str]  # e.g. {"scaling": "predictive", "batching": "throughput", "routing": "balanced"}
    requests_per_instance_hour: float  # what the scaler assumes one instance serves (wall clock)
    machine: str  # e.g. "2-core Intel Xeon, 24 GiB, Debian 12"
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ReplayRun:
    """Everything a report needs."""

    config: RunConfig
    started_at: datetime  # wall clock of replay second 0 (UTC)
    records: list[RequestRecord]
    events: list[ObservedEvent]
    send_wall_s: float  # from the first send to the last
    drain_wall_s: float  # from the last send until the last result (or the drain timeout)
    notes: list[str] = field(default_factory=list)  # what the run wants the reader to know
    duplicate_results: int = 0  # second results for a request (at-least-once delivery); the first counts
