"""The scaler's tables (schema `scaler`)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Float, Index, Integer, String, Table, Text, text
from sqlalchemy.dialects.postgresql import JSONB, UUID

from shared.db import service_metadata
from shared.delivery import delivery_attempt_table
from shared.inbox import inbox_table
from shared.outbox import outbox_table

metadata = service_metadata("scaler")
inbox = inbox_table(metadata)
delivery_attempt = delivery_attempt_table(metadata)
outbox = outbox_table(metadata)

# One row per reported window and router replica: replicas report the same period apart, so
# demand for a period is the sum of its rows.
demand_window = Table(
    "demand_window",
    metadata,
    Column("event_id", UUID(as_uuid=True), primary_key=True),
    Column("model_id", String(200), nullable=False),
    Column("region", String(50), nullable=False),
    Column("window_start", DateTime(timezone=True), nullable=False),
    Column("window_end", DateTime(timezone=True), nullable=False),
    Column("requests", Integer, nullable=False),
    Column("ok", Integer, nullable=False),
    Column("rejected", Integer, nullable=False),
    Column("failed", Integer, nullable=False),
    Column("tokens_in", BigInteger, nullable=False),
    Column("tokens_out", BigInteger, nullable=False),
    Column("latency_p95_ms", Float),
    Index("ix_demand_window_model_time", "model_id", "region", "window_start"),
    Index("ix_demand_window_window_start", "window_start"),  # evaluation and compaction read by time
)

# Latest utilisation per server (and model) from the monitor; a newer report replaces an older one.
server_utilization = Table(
    "server_utilization",
    metadata,
    Column("server_id", String(200), primary_key=True),
    Column("model_id", String(200), primary_key=True),  # "" when the report covers the whole server
    Column("region", String(50), nullable=False),
    Column("utilization", Float, nullable=False),
    Column("queue_depth", Float, nullable=False),
    Column("reported_at", DateTime(timezone=True), nullable=False),
)

# Where each model is loaded now: instances per model and region = rows.
model_placement = Table(
    "model_placement",
    metadata,
    Column("server_id", String(200), primary_key=True),
    Column("model_id", String(200), primary_key=True),
    Column("region", String(50), nullable=False),
    Column("loaded_at", DateTime(timezone=True), nullable=False),
    Index("ix_model_placement_model_region", "model_id", "region"),
)

scaling_signal = Table(
    "scaling_signal",
    metadata,
    Column("event_id", UUID(as_uuid=True), primary_key=True),
    Column("model_id", String(200)),
    Column("region", String(50)),
    Column("server_id", String(200)),
    Column("kind", String(30), nullable=False),
    Column("metric", String(100), nullable=False),
    Column("value", Float, nullable=False),
    Column("threshold", Float, nullable=False),
    Column("raised_at", DateTime(timezone=True), nullable=False),
    Column("factor", Float),  # the suggested relative change (+0.25, -0.20); NULL on rows from before 0006
    Column("gpu_type", String(50)),  # NULL: every GPU type (latency signals, older rows)
    Index("ix_scaling_signal_model_time", "model_id", "raised_at"),
)

# The measured capacity of one instance per model and GPU type: an exponentially weighted mean of the
# monitor's throughput / utilisation (domain/measured.py).
capacity_estimate = Table(
    "capacity_estimate",
    metadata,
    Column("model_id", String(200), primary_key=True),
    Column("gpu_type", String(50), primary_key=True),
    Column("requests_per_hour", Float, nullable=False),
    Column("samples", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

forecast = Table(
    "forecast",
    metadata,
    Column("event_id", UUID(as_uuid=True), primary_key=True),
    Column("model_id", String(200), nullable=False),
    Column("region", String(50), nullable=False),
    Column("made_at", DateTime(timezone=True), nullable=False),
    Column("horizon_start", DateTime(timezone=True), nullable=False),
    Column("bucket_s", Integer, nullable=False),
    Column("requests_per_hour", JSONB, nullable=False),
    Column("confidence", Float, nullable=False),
    Column("predictors", JSONB, nullable=False),  # each predictor's next-bucket requests per hour
    Column("weights", JSONB, nullable=False),
    Column("backtest_smape", JSONB, nullable=False),
    Index("ix_forecast_model_time", "model_id", "region", "made_at"),
)

# Every decision with the inputs that led to it. At most one pending action per model and
# region, enforced by the database too (partial unique index).
scaling_action = Table(
    "scaling_action",
    metadata,
    Column("action_id", String(100), primary_key=True),
    Column("model_id", String(200), nullable=False),
    Column("region", String(50), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("current_instances", Integer, nullable=False),
    Column("target_instances", Integer, nullable=False),
    Column("priority", String(10), nullable=False),
    Column("rule", String(50), nullable=False),
    Column("policy", String(30), nullable=False),
    Column("tier", String(10), nullable=False),
    Column("utilization", Float),
    Column("forecast_rph", Float, nullable=False),
    Column("confidence", Float, nullable=False),
    Column("reason", Text, nullable=False),
    Column("status", String(20), nullable=False),
    Column("requested_at", DateTime(timezone=True), nullable=False),
    Column("resolved_at", DateTime(timezone=True)),
    Index("ix_scaling_action_model_region_time", "model_id", "region", "requested_at"),
    Index("ix_scaling_action_requested_at", "requested_at"),
    Index(
        "uq_scaling_action_one_pending",
        "model_id",
        "region",
        unique=True,
        postgresql_where=text("status = 'pending'"),
    ),
)

model_tier = Table(
    "model_tier",
    metadata,
    Column("model_id", String(200), primary_key=True),
    Column("tier", String(10), nullable=False),
    Column("requests_per_hour", Float, nullable=False),
    Column("changed_at", DateTime(timezone=True), nullable=False),
    Column("evaluated_at", DateTime(timezone=True), nullable=False),
)

# Consecutive refusals of capacity by the allocator per model and region (no row: none since the
# last success). The scaler backs off from asking again and alerts once `alert_fired_at` is set.
allocation_backoff = Table(
    "allocation_backoff",
    metadata,
    Column("model_id", String(200), primary_key=True),
    Column("region", String(50), primary_key=True),
    Column("refusals", Integer, nullable=False),
    Column("last_refused_at", DateTime(timezone=True), nullable=False),
    Column("last_reason", Text, nullable=False),
    Column("alert_fired_at", DateTime(timezone=True)),
)
