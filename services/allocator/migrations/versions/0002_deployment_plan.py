"""Deployment plans

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "deployment_plan",
        sa.Column("server_id", sa.String(length=200), nullable=False),
        sa.Column("model_id", sa.String(length=200), nullable=False),
        sa.Column("strategy", sa.String(length=50), nullable=False),
        sa.Column("quantisation", sa.String(length=10), nullable=False),
        sa.Column("gpus", sa.Integer(), nullable=False),
        sa.Column("memory_per_gpu_gb", sa.Float(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("throughput", sa.Float(), nullable=False),
        sa.Column("cost_per_hour", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("server_id", "model_id", name=op.f("pk_deployment_plan")),
        schema="allocator",
    )


def downgrade() -> None:
    op.drop_table("deployment_plan", schema="allocator")
