"""The router's tables (schema `router`): the server registry, model placements, the inbox."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Float, Integer, String, Table, func

from shared.db import service_metadata
from shared.inbox import inbox_table

metadata = service_metadata("router")
inbox = inbox_table(metadata)

server = Table(
    "server",
    metadata,
    Column("server_id", String(200), primary_key=True),
    Column("endpoint", String(300), nullable=False),
    Column("region", String(50), nullable=False),
    Column("gpu_type", String(50), nullable=False),
    Column("cost_per_hour", Float, nullable=False),
    Column("capacity", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# No foreign key to server: allocation events are keyed by model, so a placement may arrive
# (on another partition) before the announcement of its server.
server_model = Table(
    "server_model",
    metadata,
    Column("server_id", String(200), primary_key=True),
    Column("model_id", String(200), primary_key=True),
    Column("triton_model", String(200), nullable=False),
    Column("loaded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
