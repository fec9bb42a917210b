"""The gateway's tables (schema `gateway`): tenants, hashed keys, and the one authoritative usage count."""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, DateTime, Index, Integer, LargeBinary, Numeric, String, Table

from shared.db import service_metadata
from shared.inbox import inbox_table
from shared.outbox import outbox_table

metadata = service_metadata("gateway")
inbox = inbox_table(metadata)
outbox = outbox_table(metadata)

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
    Column("budget_refused", Integer, nullable=False, server_default="0"),  # migration 0005
)

# The Batch API: files, batches, and one row per batch line. A line's row is the whole truth of
# that line: its state, when it is due (sent, or sent again), the claim it was admitted under, and
# its one result, written by a conditional update only while the line waits for one, so a
# repeated or late result never adds a second.
batch_file = Table(
    "batch_file",
    metadata,
    Column("file_id", String(64), primary_key=True),
    Column("tenant_id", String(64), nullable=False),
    Column("purpose", String(32), nullable=False),  # batch (uploaded), batch_output (written by a batch)
    Column("filename", String(500), nullable=False),
    Column("bytes", BigInteger, nullable=False),
    Column("content", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

batch = Table(
    "batch",
    metadata,
    Column("batch_id", String(64), primary_key=True),
    Column("tenant_id", String(64), nullable=False),
    Column("key_id", String(64), nullable=False),  # whose limits the lines count against
    Column("pool", String(64), nullable=False),  # the replicas that run it (those of the pool it was created in)
    Column("endpoint", String(64), nullable=False),
    Column("input_file_id", String(64), nullable=False),
    Column("completion_window", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("metadata", JSON),
    Column("errors", JSON),
    Column("output_file_id", String(64)),
    Column("error_file_id", String(64)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    *(
        Column(f"{name}_at", DateTime(timezone=True))
        for name in ("in_progress", "finalizing", "completed", "failed", "expired", "cancelling", "cancelled")
    ),
    Column("total", Integer, nullable=False),
    Column("completed", Integer, nullable=False),
    Column("failed", Integer, nullable=False),
    Column("input_tokens", BigInteger, nullable=False),
    Column("output_tokens", BigInteger, nullable=False),
    Column("owner", String(200)),  # the replica running it, until lease_until
    Column("lease_until", DateTime(timezone=True)),
)
Index("ix_batch_status", batch.c.status)

batch_line = Table(
    "batch_line",
    metadata,
    Column("batch_id", String(64), primary_key=True),
    Column("line_no", Integer, primary_key=True),
    Column("custom_id", String(512), nullable=False),
    Column("body", JSON, nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("due_at", DateTime(timezone=True)),  # pending: not before; sent: sent again after
    Column("claim_id", String(200)),  # the last admission (ledger) of this line, settled by its result
    Column("claim_window", DateTime(timezone=True)),
    Column("reserved", BigInteger),
    Column("response", JSON),
    Column("error", JSON),
    Column("tokens_in", Integer, nullable=False),
    Column("tokens_out", Integer, nullable=False),
    Column("finished_at", DateTime(timezone=True)),
)
Index("ix_batch_line_state", batch_line.c.batch_id, batch_line.c.state, batch_line.c.due_at)
