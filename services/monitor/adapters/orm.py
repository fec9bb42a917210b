"""The monitor's tables (schema `monitor`)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, DateTime, Float, Identity, Index, Integer, String, Table, func
from sqlalchemy.dialects.postgresql import JSONB, UUID

from shared.db import service_metadata
from shared.delivery import delivery_attempt_table
from shared.inbox import inbox_table
from shared.outbox import outbox_table

metadata = service_metadata("monitor")
inbox = inbox_table(metadata)
delivery_attempt = delivery_attempt_table(metadata)
outbox = outbox_table(metadata)

# Servers learned from allocation events, and how their scrapes are going.
scrape_target = Table(
    "scrape_target",
    metadata,
    Column("server_id", String(200), primary_key=True),
    Column("endpoint", String(300), nullable=False),
    Column("metrics_url", String(500), nullable=False),
    Column("region", String(50), nullable=False),
    Column("gpu_type", String(50), nullable=False),
    Column("gpu_count", Integer, nullable=False),
    Column("cost_per_hour", Float, nullable=False),
    Column("pricing_class", String(20), nullable=False),
    Column("allocated_at", DateTime(timezone=True), nullable=False),
    Column("consecutive_failures", Integer, nullable=False, server_default="0"),
    Column("last_scraped_at", DateTime(timezone=True)),
    Column("last_error", String(500)),
)

server_model = Table(
    "server_model",
    metadata,
    Column("server_id", String(200), primary_key=True),
    Column("model_id", String(200), primary_key=True),
    Column("triton_model", String(200), nullable=False),
    Column("region", String(50), nullable=False),
)

price = Table(
    "price",
    metadata,
    Column("region", String(50), primary_key=True),
    Column("gpu_type", String(50), primary_key=True),
    Column("on_demand_per_hour", Float, nullable=False),
    Column("spot_per_hour", Float, nullable=False),
    Column("reserved_per_hour", Float, nullable=False),
    Column("published_at", DateTime(timezone=True), nullable=False),
)

# The router's windows as they came, with the cost per token derived when they arrived.
demand_window = Table(
    "demand_window",
    metadata,
    Column("event_id", UUID(as_uuid=True), primary_key=True),
    Column("model_id", String(200), nullable=False),
    Column("region", String(50), nullable=False),
    Column("window_start", DateTime(timezone=True), nullable=False),
    Column("window_end", DateTime(timezone=True), nullable=False, index=True),
    Column("requests", Integer, nullable=False),
    Column("failed", Integer, nullable=False),
    Column("rejected", Integer, nullable=False),
    Column("tokens", BigInteger, nullable=False),
    Column("latency_p50_ms", Float),
    Column("latency_p95_ms", Float),
    Column("latency_p99_ms", Float),
    Column("cost_per_token", Float),
    Index("ix_demand_window_model_time", "model_id", "region", "window_end"),
)

# One row per server (model_id '') and per model on it, per scrape round, over the sliding window.
metric_window = Table(
    "metric_window",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("server_id", String(200), nullable=False),
    Column("model_id", String(200), nullable=False),
    Column("region", String(50), nullable=False),
    Column("gpu_type", String(50), nullable=False),
    Column("window_end", DateTime(timezone=True), nullable=False, index=True),
    Column("window_s", Float, nullable=False),
    Column("utilization", Float, nullable=False),
    Column("utilization_derived", Boolean, nullable=False),
    Column("queue_depth", Float, nullable=False),
    Column("requests_ok", Integer, nullable=False),
    Column("requests_failed", Integer, nullable=False),
    Column("throughput_rps", Float, nullable=False),
    Column("error_rate", Float),
    Column("latency_avg_ms", Float),
    Column("cost_per_hour", Float),
    Index("ix_metric_window_server_time", "server_id", "window_end"),
)

alert_rule = Table(
    "alert_rule",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("metric", String(50), nullable=False),
    Column("direction", String(10), nullable=False),
    Column("threshold", Float, nullable=False),
    Column("severity", String(20), nullable=False),
    Column("for_s", Float, nullable=False),
    Column("hysteresis", Float, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

alert_state = Table(
    "alert_state",
    metadata,
    Column("rule", String(100), primary_key=True),
    Column("scope_key", String(500), primary_key=True),
    Column("scope", JSONB, nullable=False),
    Column("severity", String(20), nullable=False),
    Column("phase", String(10), nullable=False),
    Column("since", DateTime(timezone=True)),
    Column("fired_at", DateTime(timezone=True)),
    Column("value", Float),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

alert_history = Table(
    "alert_history",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("alert_id", String(800), nullable=False, index=True),
    Column("rule", String(100), nullable=False),
    Column("severity", String(20), nullable=False),
    Column("state", String(10), nullable=False),
    Column("value", Float, nullable=False),
    Column("threshold", Float, nullable=False),
    Column("scope", JSONB, nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
)

signal_state = Table(
    "signal_state",
    metadata,
    Column("kind", String(20), primary_key=True),
    Column("scope_key", String(500), primary_key=True),
    Column("raised_at", DateTime(timezone=True), nullable=False),
)
