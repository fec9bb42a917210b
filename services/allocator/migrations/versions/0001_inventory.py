"""Inventory, prices, model requirements, servers, placements, actions, inbox, outbox

Revision ID: 0001
Revises:
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "gpu",
        sa.Column("gpu_id", sa.String(length=120), nullable=False),
        sa.Column("region", sa.String(length=50), nullable=False),
        sa.Column("gpu_type", sa.String(length=50), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("server_id", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("gpu_id", name=op.f("pk_gpu")),
        schema="allocator",
    )
    op.create_index("ix_gpu_pool_state", "gpu", ["region", "gpu_type", "state"], unique=False, schema="allocator")
    op.create_index("ix_gpu_server_id", "gpu", ["server_id"], unique=False, schema="allocator")
    op.create_table(
        "gpu_pool",
        sa.Column("region", sa.String(length=50), nullable=False),
        sa.Column("gpu_type", sa.String(length=50), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("available", sa.Integer(), nullable=False),
        sa.Column("reserved", sa.Integer(), nullable=False),
        sa.Column("pricing_class", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("available + reserved <= total", name=op.f("ck_gpu_pool_within_total")),
        sa.CheckConstraint("available >= 0", name=op.f("ck_gpu_pool_available_not_negative")),
        sa.CheckConstraint("reserved >= 0", name=op.f("ck_gpu_pool_reserved_not_negative")),
        sa.PrimaryKeyConstraint("region", "gpu_type", name=op.f("pk_gpu_pool")),
        schema="allocator",
    )
    op.create_table(
        "gpu_price",
        sa.Column("region", sa.String(length=50), nullable=False),
        sa.Column("gpu_type", sa.String(length=50), nullable=False),
        sa.Column("on_demand_per_hour", sa.Float(), nullable=False),
        sa.Column("spot_per_hour", sa.Float(), nullable=False),
        sa.Column("reserved_per_hour", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("region", "gpu_type", name=op.f("pk_gpu_price")),
        schema="allocator",
    )
    op.create_table(
        "inbox",
        sa.Column("consumer", sa.String(length=100), nullable=False),
        sa.Column("event_id", sa.UUID(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id", name=op.f("pk_inbox")),
        schema="allocator",
    )
    op.create_table(
        "model_requirement",
        sa.Column("model_id", sa.String(length=200), nullable=False),
        sa.Column("min_memory_gb", sa.Float(), nullable=False),
        sa.Column("preferred_gpu", sa.String(length=50), nullable=False),
        sa.Column("instances_per_gpu", sa.Integer(), nullable=False),
        sa.Column("triton_model", sa.String(length=200), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("latency_target_ms", sa.Float(), nullable=True),
        sa.Column("quantisations", sa.String(length=50), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("model_id", name=op.f("pk_model_requirement")),
        schema="allocator",
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("topic", sa.String(length=200), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        schema="allocator",
    )
    op.create_index(op.f("ix_outbox_published_at"), "outbox", ["published_at"], unique=False, schema="allocator")
    op.create_table(
        "placement",
        sa.Column("server_id", sa.String(length=200), nullable=False),
        sa.Column("model_id", sa.String(length=200), nullable=False),
        sa.Column("triton_model", sa.String(length=200), nullable=False),
        sa.Column("instances", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("action_id", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("instances >= 0", name=op.f("ck_placement_instances_not_negative")),
        sa.PrimaryKeyConstraint("server_id", "model_id", name=op.f("pk_placement")),
        schema="allocator",
    )
    op.create_table(
        "scaling_action",
        sa.Column("action_id", sa.String(length=200), nullable=False),
        sa.Column("model_id", sa.String(length=200), nullable=False),
        sa.Column("region", sa.String(length=50), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("target_instances", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.String(length=2000), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("action_id", name=op.f("pk_scaling_action")),
        schema="allocator",
    )
    op.create_table(
        "server",
        sa.Column("server_id", sa.String(length=200), nullable=False),
        sa.Column("region", sa.String(length=50), nullable=False),
        sa.Column("gpu_type", sa.String(length=50), nullable=False),
        sa.Column("gpu_count", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("endpoint", sa.String(length=200), nullable=True),
        sa.Column("metrics_url", sa.String(length=300), nullable=True),
        sa.Column("cost_per_hour", sa.Float(), nullable=False),
        sa.Column("pricing_class", sa.String(length=20), nullable=False),
        sa.Column("action_id", sa.String(length=200), nullable=True),
        sa.Column("reason", sa.String(length=2000), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("server_id", name=op.f("pk_server")),
        schema="allocator",
    )
    op.create_index("ix_server_state", "server", ["state"], unique=False, schema="allocator")


def downgrade() -> None:
    op.drop_index("ix_server_state", table_name="server", schema="allocator")
    op.drop_table("server", schema="allocator")
    op.drop_table("scaling_action", schema="allocator")
    op.drop_table("placement", schema="allocator")
    op.drop_index(op.f("ix_outbox_published_at"), table_name="outbox", schema="allocator")
    op.drop_table("outbox", schema="allocator")
    op.drop_table("model_requirement", schema="allocator")
    op.drop_table("inbox", schema="allocator")
    op.drop_table("gpu_price", schema="allocator")
    op.drop_table("gpu_pool", schema="allocator")
    op.drop_index("ix_gpu_server_id", table_name="gpu", schema="allocator")
    op.drop_index("ix_gpu_pool_state", table_name="gpu", schema="allocator")
    op.drop_table("gpu", schema="allocator")
