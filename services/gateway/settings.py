"""The gateway's settings (`LLMFLEET_GATEWAY_*`); dicts and lists are read as JSON from the environment."""

from __future__ import annotations

import os
import re
import socket

from pydantic import BaseModel, Field
from pydantic_settings import SettingsConfigDict

from services.gateway.domain.catalogue import ModelSpec
from services.gateway.domain.chat import ChatTemplate
from shared.events import INFERENCE_REQUESTS
from shared.settings import ServiceSettings

# The models of services/allocator/fleet.yaml, as the gateway's default catalogue.
FLEET_MODELS = ("gpt-4-turbo", "gpt-3.5-turbo", "claude-3-opus", "llama-2-70b", "llama-2-13b", "tinylm", "echo")


class ModelEntry(BaseModel):
    """A servable model: its chat template and, if known, its tier."""

    template: ChatTemplate = ChatTemplate.PLAIN
    tier: str | None = None


def default_instance_id() -> str:
    """POD_NAME where Kubernetes sets it; elsewhere host name and process id, so local replicas differ too."""
    if pod := os.environ.get("POD_NAME"):
        return pod
    return f"{os.environ.get('HOSTNAME') or socket.gethostname()}-{os.getpid()}"


class GatewaySettings(ServiceSettings):
    """Settings of the OpenAI-compatible gateway."""

    model_config = SettingsConfigDict(env_prefix="LLMFLEET_GATEWAY_", extra="ignore", frozen=True)

    service_name: str = Field(
        default="gateway", description="the service's name: its schema, role and default consumer group"
    )
    http_host: str = Field(default="127.0.0.1", description="address the OpenAI API binds (0.0.0.0 in containers)")
    http_port: int = Field(default=8080, ge=0, le=65535, description="port of the OpenAI API (/v1/...)")
    instance_id: str = Field(
        default_factory=default_instance_id,
        min_length=1,
        json_schema_extra={"table_default": "$POD_NAME or <host>-<pid>"},
        description="this replica: its reply topic is inference.replies.gateway-<instance_id>",
    )
    requests_topic: str = Field(default=INFERENCE_REQUESTS.name, description="where requests go (the router's)")
    reply_partitions: int = Field(default=2, ge=1, description="partitions of this replica's reply topic")
    delete_reply_topic: bool = Field(default=True, description="delete this replica's reply topic on a graceful stop")
    models: dict[str, ModelEntry] = Field(
        default_factory=lambda: {m: ModelEntry() for m in FLEET_MODELS},
        description="servable models {id: {template, tier}}; a model the allocations show loaded is served too",
    )
    follow_allocations: bool = Field(default=True, description="replay and follow fleet.allocations.v1 for /v1/models")
    request_timeout_s: float = Field(default=60.0, gt=0, description="deadline of a request: then 504")
    default_max_tokens: int = Field(default=16, ge=1, le=8192, description="max_tokens when a request sets none")
    key_cache_s: float = Field(default=5.0, ge=0, description="how long a key lookup is cached (revocation delay)")
    settle_wait_s: float = Field(
        default=1.0, ge=0, description="an answer waits at most this for its usage to be written (then goes anyway)"
    )
    lease_grace_s: float = Field(default=30.0, ge=0, description="a lease outlives its deadline this long (crashes)")
    reap_interval_s: float = Field(default=10.0, gt=0, description="how often expired leases are released")
    usage_retention_s: float = Field(default=86400.0, gt=0, description="per-minute usage rows kept")
    batch_reply_topic: str = Field(
        default="inference.replies.gateway-batch",
        description="where batch lines' results go: one topic every replica reads as the batch consumer group",
    )
    batch_reply_partitions: int = Field(default=4, ge=1, description="partitions of the batch reply topic")
    batch_consumer_group: str = Field(default="gateway-batch", description="consumer group of the batch reply topic")
    batch_pool: str = Field(
        default="default",
        min_length=1,
        max_length=64,
        description="a replica runs the batches created in its pool (gateways sharing one schema apart)",
    )
    batch_priority: int = Field(default=1, ge=0, le=9, description="priority of batch lines (below interactive)")
    batch_window: int = Field(default=64, ge=1, description="lines of one batch in flight at once")
    batch_line_timeout_s: float = Field(default=300.0, gt=0, description="deadline of a batch line at the router")
    batch_resend_after_s: float = Field(
        default=30.0, gt=0, description="a line with no result this long after its deadline is sent again"
    )
    batch_lease_s: float = Field(default=30.0, gt=0, description="a replica's lease on a batch it runs")
    batch_interval_s: float = Field(default=0.5, gt=0, description="how often a replica's batch runner takes a round")
    batch_max_attempts: int = Field(default=3, ge=1, description="sends of a line that fails (not overload refusals)")
    batch_retry_s: float = Field(default=2.0, ge=0, description="a line refused as overloaded goes again after this")
    batch_max_lines: int = Field(default=50_000, ge=1, description="lines one batch may hold")
    batch_max_file_bytes: int = Field(default=200 << 20, ge=1, description="largest upload to POST /v1/files")
    trace_requests: bool = Field(
        default=True,
        description="a span per call (and its traceparent to the router); a client's traceparent is always followed",
    )
    priority: int = Field(default=5, ge=0, le=9, description="priority of the gateway's interactive requests")
    default_price_per_1k_tokens: float = Field(
        default=0.002, ge=0, description="USD per 1,000 tokens (prompt + completion) that monthly budgets count"
    )
    price_per_1k_tokens: dict[str, float] = Field(
        default_factory=dict, description="per-model prices (USD per 1,000 tokens) overriding the default"
    )
    meter_interval_s: float = Field(
        default=60.0, gt=0, description="how often usage per tenant x model is published (fleet.usage.v1)"
    )

    def catalogue_specs(self) -> dict[str, ModelSpec]:
        """The configured models as the domain's specs."""
        return {name: ModelSpec(name, e.template, e.tier) for name, e in self.models.items()}

    @property
    def reply_topic(self) -> str:
        """This replica's own reply topic (the router allows the `inference.replies.` prefix)."""
        return "inference.replies.gateway-" + re.sub(r"[^A-Za-z0-9._-]", "-", self.instance_id)[:200]
