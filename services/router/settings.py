"""The router's settings (`LLMFLEET_ROUTER_*`); dicts and lists are read as JSON from the environment."""

from __future__ import annotations

import os
import socket

from pydantic import BaseModel, Field
from pydantic_settings import SettingsConfigDict

from services.router.domain.batching import BatchLimits, BatchStrategy, limits_for
from shared.settings import ServiceSettings
from shared.streaming import STREAM_SUFFIX


class StaticServer(BaseModel):
    """A Triton server the router uses without an allocator announcing it (demo, benchmark)."""

    server_id: str
    endpoint: str
    region: str = "us-east-1"
    gpu_type: str = "unknown"
    cost_per_hour: float = 0.0
    capacity: int = Field(default=4, ge=1)
    models: dict[str, str] = Field(default_factory=dict, description="model id -> name in Triton's repository")


def default_instance_id() -> str:
    """POD_NAME where Kubernetes sets it; elsewhere host name and process id, so local replicas differ too."""
    if pod := os.environ.get("POD_NAME"):
        return pod
    return f"{os.environ.get('HOSTNAME') or socket.gethostname()}-{os.getpid()}"


class RouterSettings(ServiceSettings):
    """Settings of the router service."""

    model_config = SettingsConfigDict(env_prefix="LLMFLEET_ROUTER_", extra="ignore", frozen=True)

    service_name: str = Field(
        default="router", description="the service's name: its schema, role and default consumer group"
    )
    instance_id: str = Field(
        default_factory=default_instance_id,
        min_length=1,
        json_schema_extra={"table_default": "$POD_NAME or <host>-<pid>"},
        description="this replica (client ids, logs); default POD_NAME, else host name and process id",
    )
    registry_catchup_timeout_s: float = Field(
        default=30.0, ge=0.0, description="at start, how long serving waits for the allocation replay to catch up"
    )
    requests_topic: str = Field(
        default="inference.requests.v1", description="another topic with the same events (benchmarks, canaries)"
    )
    default_batch_strategy: BatchStrategy = Field(
        default=BatchStrategy.LATENCY_OPTIMIZED,
        description="latency_optimized (8 / 50 ms), throughput_optimized (32 / 200 ms) or cost_optimized (64 / 500 ms)",
    )
    batch_strategies: dict[str, BatchStrategy] = Field(default_factory=dict, description="model id -> strategy")
    default_token_budget: int = Field(
        default=65_536,
        ge=1,
        description="tokens (prompt + max_tokens) one batch may hold, unless token_budgets says otherwise",
    )
    token_budgets: dict[str, int] = Field(default_factory=dict, description="model id -> tokens per batch")
    deadline_margin_s: float = Field(default=0.05, ge=0.0, description="close a batch this long before a deadline")
    max_queue_per_model: int = Field(
        default=2_000, ge=1, description="a fail_fast request is rejected when its model has this many queued"
    )
    shed_below_priority: int = Field(
        default=0,
        ge=0,
        le=10,
        description="requests below this priority are shed first under overload (2: the gateway's batch lines; 0: off)",
    )
    shed_queue_per_model: int = Field(
        default=500,
        ge=1,
        description="a request below shed_below_priority is rejected over capacity at this many queued",
    )
    max_queued_requests: int = Field(
        default=5_000, ge=1, description="requests held in the process; above it the router stops fetching from Kafka"
    )
    max_queued_bytes: int = Field(
        default=64 << 20, ge=1 << 20, description="prompt bytes held in the process; above it the router stops fetching"
    )
    max_prompt_bytes: int = Field(default=200_000, ge=1, description="longer prompts are rejected")
    max_cold_start_models: int = Field(
        default=50, ge=1, description="distinct models that may wait for a cold start at once; more are rejected"
    )
    max_metric_models: int = Field(
        default=200, ge=1, description="models with metric labels of their own; the rest are counted as _other"
    )
    model_max_tokens: dict[str, int] = Field(
        default_factory=lambda: {"tinylm": 512},
        description="Triton model name -> largest max_tokens it accepts (checked before batching)",
    )
    reply_topic_prefixes: list[str] = Field(
        default_factory=lambda: ["inference.results.", "inference.replies."],
        description="a request's reply_topic must start with one of these (or be in reply_topics)",
    )
    reply_topics: list[str] = Field(default_factory=list, description="reply topics allowed by exact name")
    liveness_stall_s: float = Field(
        default=30.0, description="/live answers 503 when the consume loop has not turned for this long"
    )
    repeat_check_window_s: float = Field(
        default=30.0,
        description="after a crash, results written this long after the last commit are read back, so none repeats",
    )
    repeat_check_timeout_s: float = Field(default=10.0, description="the longest that read-back may take")
    rebalance_drain_s: float = Field(
        default=20.0, description="on partition revocation, how long in-flight results of those partitions may take"
    )
    cold_start_models: list[str] = Field(default_factory=lambda: ["*"], description='"*": ask for any model')
    cold_start_timeout_s: float = Field(
        default=120.0,
        description="how long requests for a model no server holds wait for one (unless their deadline is sooner)",
    )
    model_request_cooldown_s: float = Field(
        default=30.0, description="ModelRequested is repeated at most this often per model and region"
    )
    static_servers: list[StaticServer] = Field(
        default_factory=list,
        description="Triton servers known without the allocator (JSON list: server_id, endpoint, region, models...)",
    )
    follow_allocations: bool = Field(
        default=True, description="build the registry from allocation events and its tables; False: static servers only"
    )
    max_attempts: int = Field(default=3, ge=1, description="servers a batch is tried on before it fails")
    no_server_wait_s: float = Field(
        default=2.0, description="how long a batch waits for a healthy server before its rows wait as in a cold start"
    )
    triton_timeout_s: float = Field(default=60.0, description="limit on one Triton call")
    stream_variant_suffix: str = Field(
        default=STREAM_SUFFIX,
        description="a streamed request runs on <model's Triton name><suffix>, the decoupled variant, where loaded",
    )
    health_interval_s: float = Field(default=1.0, description="readiness check interval per server")
    health_backoff_max_s: float = Field(default=30.0, description="longest pause between checks of a server not ready")
    demand_window_s: float = Field(
        default=10.0, description="length of the demand windows published to fleet.demand.v1"
    )
    trace_root_ratio: float = Field(
        default=1.0,
        ge=0.0,
        le=1.0,
        description="share of requests without a producer trace that the router starts a trace for",
    )
    commit_interval_s: float = Field(
        default=0.2,
        description="how often offsets (and which later requests are answered) are committed (measured: every "
        "50 ms costs ~30 ms of end-to-end p99 at 1,000 requests/s)",
    )
    max_poll_records: int = Field(default=1_000, ge=1, description="records read from Kafka per poll")
    fetch_max_bytes: int = Field(default=16 << 20, ge=1 << 20, description="bytes one fetch from Kafka may return")
    shutdown_timeout_s: float = Field(
        default=30.0, description="on SIGTERM, how long in-flight batches may take to finish"
    )
    gc_thresholds: tuple[int, int, int] = Field(
        default=(700, 10, 10), description="gc.set_threshold for the router process (CPython's defaults)"
    )

    def limits(self, model_id: str) -> BatchLimits:
        """Batch limits for one model: its strategy (or the default) with its token budget."""
        strategy = self.batch_strategies.get(model_id, self.default_batch_strategy)
        return limits_for(strategy, self.token_budgets.get(model_id, self.default_token_budget))
