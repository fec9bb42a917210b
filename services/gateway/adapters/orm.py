"""The gateway's tables (schema `gateway`): tenants, hashed keys, and the one authoritative usage count."""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, DateTime, Index, Integer, Numeric, String, Table

from shared.db import service_metadata
from shared.inbox import inbox_table
from shared.outbox import outbox_table

metadata = service_metadata("gateway")
inbox = inbox_table(metadata)
outbox = outbox_table(metadata, traced=False)  # no traceparent column until the gateway's migration adds it

tenant = Table(
    "tenant",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("rpm", Integer),
    Column("tpm", BigInteger),
    Column("concurrency", Integer),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("monthly_budget_usd", Numeric(18, 9)),
)

# The key itself is never stored: its SHA-256, and a short prefix to tell keys apart in a list.
api_key = Table(
    "api_key",
    metadata,
    Column("key_id", String(64), primary_key=True),
    Column("tenant_id", String(64), nullable=False),  # a tenant that exists (keys.create_key checks; never deleted)
    Column("name", String(200), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(32), nullable=False),
    Column("scopes", JSON, nullable=False),
    Column("rpm", Integer),
    Column("tpm", BigInteger),
    Column("concurrency", Integer),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
    Column("monthly_budget_usd", Numeric(18, 9)),
)

# Requests and tokens per subject (key:<id> / tenant:<id>) and minute: raised by the statement
# that admits, corrected when the request settles. Every replica counts here, never in memory.
usage_window = Table(
    "usage_window",
    metadata,
    Column("subject", String(80), primary_key=True),
    Column("window_start", DateTime(timezone=True), primary_key=True),
    Column("requests", Integer, nullable=False),
    Column("tokens", BigInteger, nullable=False),
    Column("rpm_limit", BigInteger),  # the limits of the last admission (what its statement compared with)
    Column("tpm_limit", BigInteger),
)
Index("ix_usage_window_window_start", usage_window.c.window_start)

# Requests in flight per subject: a counter row raised under its limit, and one lease per request
# and subject, so a replica that dies leaks nothing past the lease (the reaper gives it back).
inflight = Table(
    "inflight",
    metadata,
    Column("subject", String(80), primary_key=True),
    Column("requests", Integer, nullable=False),
    Column("concurrency_limit", BigInteger),
)
lease = Table(
    "lease",
    metadata,
    Column("request_id", String(200), primary_key=True),
    Column("subject", String(80), primary_key=True),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)
Index("ix_lease_expires_at", lease.c.expires_at)

# Spend per subject and (UTC) month in nano-dollars: raised by the worst-case cost of a request in
# the statement that admits it, corrected to the real cost when it settles. Only budgeted subjects.
budget_month = Table(
    "budget_month",
    metadata,
    Column("subject", String(80), primary_key=True),
    Column("month_start", DateTime(timezone=True), primary_key=True),
    Column("spent_nanos", BigInteger, nullable=False),
    Column("budget_nanos", BigInteger),  # the budget of the last admission (what its statement compared with)
)

# What each tenant used of each model since the last flush: raised in the ledger's rounds, then
# read and emptied by the meter job into one UsageMetered per row (outbox, same transaction).
usage_meter = Table(
    "usage_meter",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("model_id", String(200), primary_key=True),
    Column("requests", Integer, nullable=False),
    Column("failed", Integer, nullable=False),
    Column("prompt_tokens", BigInteger, nullable=False),
    Column("completion_tokens", BigInteger, nullable=False),
    Column("cost_nanos", BigInteger, nullable=False),
    Column("since", DateTime(timezone=True), nullable=False),
)
