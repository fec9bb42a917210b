"""The scaler's tables (schema `scaler`)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Float, Index, Integer, String, Table
from sqlalchemy.dialects.postgresql import UUID

from shared.db import service_metadata
from shared.inbox import inbox_table
from shared.outbox import outbox_table

metadata = service_metadata("scaler")
inbox = inbox_table(metadata)
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
)
