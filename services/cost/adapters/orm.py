"""The cost service's tables (schema `cost`)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Date, DateTime, Float, Index, Integer, String, Table
from sqlalchemy.dialects.postgresql import JSONB, UUID

from shared.db import service_metadata
from shared.delivery import delivery_attempt_table
from shared.inbox import inbox_table
from shared.outbox import outbox_table

metadata = service_metadata("cost")
inbox = inbox_table(metadata)
delivery_attempt = delivery_attempt_table(metadata)
outbox = outbox_table(metadata)

# The pricing catalogue: base prices per GPU hour, and each region's multiplier and egress.
gpu_price = Table(
    "gpu_price",
    metadata,
    Column("gpu_type", String(50), primary_key=True),
    Column("on_demand", Float, nullable=False),
    Column("spot", Float, nullable=False),
    Column("reserved", Float, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
region_price = Table(
    "region_price",
    metadata,
    Column("region", String(50), primary_key=True),
    Column("multiplier", Float, nullable=False),
    Column("egress_per_gb", Float, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# The fleet as allocation events describe it; released servers keep their row for history.
fleet_server = Table(
    "fleet_server",
    metadata,
    Column("server_id", String(200), primary_key=True),
    Column("region", String(50), nullable=False),
    Column("gpu_type", String(50), nullable=False),
    Column("gpu_count", Integer, nullable=False),
    Column("pricing_class", String(20), nullable=False),
    Column("cost_per_hour", Float, nullable=False),
    Column("allocated_at", DateTime(timezone=True)),
    Column("released_at", DateTime(timezone=True)),
)
server_model = Table(
    "server_model",
    metadata,
    Column("server_id", String(200), primary_key=True),
    Column("model_id", String(200), primary_key=True),
)
# Latest utilisation per server: kept apart from fleet_server, since metrics may arrive first.
server_utilization = Table(
    "server_utilization",
    metadata,
    Column("server_id", String(200), primary_key=True),
    Column("utilization", Float, nullable=False),
    Column("throughput_rps", Float, nullable=False),
    Column("reported_at", DateTime(timezone=True), nullable=False),
)
demand_window = Table(
    "demand_window",
    metadata,
    Column("event_id", UUID(as_uuid=True), primary_key=True),
    Column("model_id", String(200), nullable=False),
    Column("region", String(50), nullable=False),
    Column("window_start", DateTime(timezone=True), nullable=False),
    Column("window_end", DateTime(timezone=True), nullable=False),
    Column("requests", Integer, nullable=False),
    Column("tokens", BigInteger, nullable=False),
    Column("latency_p50_ms", Float),
    Index("ix_demand_window_window_end", "window_end"),
)
# The scaler's latest forecast per model and region ("" = the whole fleet).
forecast = Table(
    "forecast",
    metadata,
    Column("model_id", String(200), primary_key=True),
    Column("region", String(50), primary_key=True),
    Column("horizon_start", DateTime(timezone=True), nullable=False),
    Column("requests_per_hour", JSONB, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
)
# Each distinct recommendation once (the id hashes its key and action); status follows its life.
recommendation = Table(
    "recommendation",
    metadata,
    Column("recommendation_id", String(100), primary_key=True),
    Column("key", String(300), nullable=False, index=True),
    Column("kind", String(20), nullable=False),
    Column("region", String(50)),
    Column("gpu_type", String(50)),
    Column("model_id", String(200)),
    Column("summary", String(2000), nullable=False),
    Column("savings_per_month", Float, nullable=False),
    Column("action", JSONB, nullable=False),
    Column("evidence", JSONB, nullable=False),
    Column("status", String(20), nullable=False),  # open | superseded | withdrawn | applied
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("applied_request", JSONB),
)
# Each pool's GPUs per pricing class as the allocator last announced them (CapacityChanged), with the
# reserved commitment's term: the report's committed spend. Pools never changed have no row.
pool_capacity = Table(
    "pool_capacity",
    metadata,
    Column("region", String(50), primary_key=True),
    Column("gpu_type", String(50), primary_key=True),
    Column("on_demand", Integer, nullable=False),
    Column("spot", Integer, nullable=False),
    Column("reserved", Integer, nullable=False),
    Column("commitment_months", Integer),
    Column("request_id", String(200), nullable=False, doc="the capacity change that set it"),
    Column("changed_at", DateTime(timezone=True), nullable=False),
)
# Every report sent, with the fleet snapshot it priced.
cost_report = Table(
    "cost_report",
    metadata,
    Column("report_id", String(100), primary_key=True),
    Column("trigger", String(20), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, index=True),
    Column("total_per_hour", Float, nullable=False),
    Column("body", JSONB, nullable=False),
)
# The gateway's metered usage (UsageMetered) per tenant x model x UTC day: the chargeback. `cost_usd`
# is tokens x this service's cost per 1,000 tokens of the model (the latest report's) when the usage
# arrived; tokens of a model the report had no cost for are counted in `unpriced_tokens`.
tenant_usage = Table(
    "tenant_usage",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("model_id", String(200), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("tenant", String(200), nullable=False),
    Column("requests", BigInteger, nullable=False),
    Column("failed", BigInteger, nullable=False),
    Column("prompt_tokens", BigInteger, nullable=False),
    Column("completion_tokens", BigInteger, nullable=False),
    Column("billed_usd", Float, nullable=False),
    Column("cost_usd", Float, nullable=False),
    Column("unpriced_tokens", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_tenant_usage_day", "day"),
)
