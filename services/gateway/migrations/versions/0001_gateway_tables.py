"""Inbox, outbox, tenants, hashed API keys, usage per minute, requests in flight and their leases.

Revision ID: 0001
Revises:
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def _ts(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _limits() -> list[sa.Column]:
    return [sa.Column("rpm", sa.Integer), sa.Column("tpm", sa.BigInteger), sa.Column("concurrency", sa.Integer)]


def upgrade() -> None:
    op.create_table(
        "inbox",
        sa.Column("consumer", sa.String(100), nullable=False),
        sa.Column("event_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("consumer", "event_id", name="pk_inbox"),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("topic", sa.String(200), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        _ts("published_at"),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
    )
    op.create_index("ix_outbox_published_at", "outbox", ["published_at"])
    op.create_table(
        "tenant",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        *_limits(),
        _ts("created_at", nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", name="pk_tenant"),
        sa.UniqueConstraint("name", name="uq_tenant_name"),
    )
    op.create_table(
        "api_key",
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(32), nullable=False),
        sa.Column("scopes", sa.JSON, nullable=False),
        *_limits(),
        _ts("created_at", nullable=False),
        _ts("expires_at"),
        _ts("revoked_at"),
        sa.PrimaryKeyConstraint("key_id", name="pk_api_key"),
        sa.UniqueConstraint("key_hash", name="uq_api_key_key_hash"),
    )
    op.create_table(
        "usage_window",
        sa.Column("subject", sa.String(80), nullable=False),
        _ts("window_start", nullable=False),
        sa.Column("requests", sa.Integer, nullable=False),
        sa.Column("tokens", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("subject", "window_start", name="pk_usage_window"),
    )
    op.create_index("ix_usage_window_window_start", "usage_window", ["window_start"])
    op.create_table(
        "inflight",
        sa.Column("subject", sa.String(80), nullable=False),
        sa.Column("requests", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("subject", name="pk_inflight"),
    )
    op.create_table(
        "lease",
        sa.Column("request_id", sa.String(200), nullable=False),
        sa.Column("subject", sa.String(80), nullable=False),
        _ts("expires_at", nullable=False),
        sa.PrimaryKeyConstraint("request_id", "subject", name="pk_lease"),
    )
    op.create_index("ix_lease_expires_at", "lease", ["expires_at"])


def downgrade() -> None:
    for table in ("lease", "inflight", "usage_window", "api_key", "tenant", "outbox", "inbox"):
        op.drop_table(table)
