"""The allocator's tables (schema `allocator`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Column, DateTime, Float, Index, Integer, String, Table, func
from sqlalchemy.dialects.postgresql import JSONB

from shared.db import service_metadata
from shared.delivery import delivery_attempt_table
from shared.inbox import inbox_table
from shared.outbox import outbox_table

metadata = service_metadata("allocator")
inbox = inbox_table(metadata)
delivery_attempt = delivery_attempt_table(metadata)
outbox = outbox_table(metadata)


def _timestamps() -> list[Column[datetime]]:
    return [
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    ]


# The counters are the truth for "how many are free"; the CHECKs make over-allocation impossible
# even for a writer that forgets the row lock.
gpu_pool = Table(
    "gpu_pool",
    metadata,
    Column("region", String(50), primary_key=True),
    Column("gpu_type", String(50), primary_key=True),
    Column("total", Integer, nullable=False),
    Column("available", Integer, nullable=False),
    Column("reserved", Integer, nullable=False),
    Column("pricing_class", String(20), nullable=False),
    *_timestamps(),
    CheckConstraint("available >= 0", name="available_not_negative"),
    CheckConstraint("reserved >= 0", name="reserved_not_negative"),
    CheckConstraint("available + reserved <= total", name="within_total"),
)

gpu = Table(
    "gpu",
    metadata,
    Column("gpu_id", String(120), primary_key=True),
    Column("region", String(50), nullable=False),
    Column("gpu_type", String(50), nullable=False),
    Column("state", String(20), nullable=False, doc="free, reserved or allocated"),
    Column("server_id", String(200)),
    Column(
        "pricing_class",
        String(20),
        nullable=False,
        server_default="on_demand",
        doc="how this GPU is paid for: on_demand, spot or reserved (a commitment)",
    ),
    Index("ix_gpu_pool_state", "region", "gpu_type", "state"),
    Index("ix_gpu_server_id", "server_id"),
)

gpu_price = Table(
    "gpu_price",
    metadata,
    Column("region", String(50), primary_key=True),
    Column("gpu_type", String(50), primary_key=True),
    Column("on_demand_per_hour", Float, nullable=False),
    Column("spot_per_hour", Float, nullable=False),
    Column("reserved_per_hour", Float, nullable=False),
    *_timestamps(),
)

model_requirement = Table(
    "model_requirement",
    metadata,
    Column("model_id", String(200), primary_key=True),
    Column("min_memory_gb", Float, nullable=False),
    Column("preferred_gpu", String(50), nullable=False),
    Column("instances_per_gpu", Integer, nullable=False),
    Column("triton_model", String(200)),
    Column("latency_ms", Float, nullable=False),
    Column("latency_target_ms", Float),
    Column("quantisations", String(50), nullable=False, doc="comma separated, e.g. fp16,int8"),
    Column("emulates", String(200), doc="the GPU performance model's name for the model: figures come from it"),
    *_timestamps(),
)

server = Table(
    "server",
    metadata,
    Column("server_id", String(200), primary_key=True),
    Column("region", String(50), nullable=False),
    Column("gpu_type", String(50), nullable=False),
    Column("gpu_count", Integer, nullable=False),
    Column("state", String(20), nullable=False, doc="starting, running, draining, stopping, released, failed"),
    Column("endpoint", String(200)),
    Column("metrics_url", String(300)),
    Column("cost_per_hour", Float, nullable=False),
    Column("pricing_class", String(20), nullable=False),
    Column("action_id", String(200)),
    Column("reason", String(2000)),
    Column("unhealthy_since", DateTime(timezone=True), doc="when the reconciler first found it not answering"),
    Column("reclaim_at", DateTime(timezone=True), doc="a spot server's reclaim time (state draining until then)"),
    *_timestamps(),
    Index("ix_server_state", "state"),
)

placement = Table(
    "placement",
    metadata,
    Column("server_id", String(200), primary_key=True),
    Column("model_id", String(200), primary_key=True),
    Column("triton_model", String(200), nullable=False),
    Column("instances", Integer, nullable=False),
    Column("state", String(20), nullable=False, doc="loading, ready, unloading"),
    Column("action_id", String(200)),
    *_timestamps(),
    CheckConstraint("instances >= 0", name="instances_not_negative"),
)

scaling_action = Table(
    "scaling_action",
    metadata,
    Column("action_id", String(200), primary_key=True),
    Column("model_id", String(200), nullable=False),
    Column("region", String(50), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("target_instances", Integer, nullable=False),
    Column("state", String(20), nullable=False, doc="in_progress, done, failed"),
    Column("reason", String(2000)),
    Column("priority", Integer, nullable=False, server_default="1", doc="0 high, 1 medium, 2 low: served first"),
    Column("attempts", Integer, nullable=False, server_default="0", doc="times a worker took it on"),
    Column("owner", String(200), doc="the worker carrying it out now (while its lease runs)"),
    Column("lease_until", DateTime(timezone=True)),
    Column("traceparent", String(128), doc="the requesting event's W3C trace context: provisioning continues it"),
    *_timestamps(),
    Index("ix_scaling_action_queue", "state", "priority", "created_at"),
)

# Servers announced on the allocations topic by anyone else (a benchmark, another deployment, an
# operator's script): the reconciler retires those that stop answering, so no consumer keeps them.
registered_server = Table(
    "registered_server",
    metadata,
    Column("server_id", String(200), primary_key=True),
    Column("endpoint", String(200), nullable=False),
    Column("region", String(50), nullable=False),
    Column("registered_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("unanswered_since", DateTime(timezone=True), doc="when it was first found not answering"),
)

# Every CapacityChangeRequested the cost service sent (an operator applied a recommendation), once
# per request id: what was asked, what changed (or why it was refused), and when.
capacity_change = Table(
    "capacity_change",
    metadata,
    Column("request_id", String(200), primary_key=True),
    Column("recommendation_id", String(200), nullable=False),
    Column("region", String(50), nullable=False),
    Column("gpu_type", String(50), nullable=False),
    Column("requested", JSONB, nullable=False, doc="GPUs to add or release per pricing class"),
    Column("applied", JSONB, doc="what changed: conversions, releases, purchases, servers repriced"),
    Column("result", String(20), nullable=False, doc="applied or refused"),
    Column("reason", String(2000)),
    Column("commitment_months", Integer),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Which server of a deployment's Triton pool each server id was handed: survives a restart.
pool_assignment = Table(
    "pool_assignment",
    metadata,
    Column("endpoint", String(200), primary_key=True),
    Column("server_id", String(200), nullable=False, unique=True),
    Column("assigned_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# The deployment plan chosen for a model on a server's GPU type (planner.best_plan), kept for
# operators and the cost service: strategy, quantisation and what it gives for what it costs.
deployment_plan = Table(
    "deployment_plan",
    metadata,
    Column("server_id", String(200), primary_key=True),
    Column("model_id", String(200), primary_key=True),
    Column("strategy", String(50), nullable=False),
    Column("quantisation", String(10), nullable=False),
    Column("gpus", Integer, nullable=False),
    Column("memory_per_gpu_gb", Float, nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("throughput", Float, nullable=False),
    Column("cost_per_hour", Float, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
