"""Capacity changes: each GPU's pricing class, and the audit of the cost service's capacity change requests

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    # A pool's GPUs may now be paid for in several ways; each GPU starts as its pool's class.
    op.add_column(
        "gpu",
        sa.Column("pricing_class", sa.String(20), nullable=False, server_default="on_demand"),
        schema="allocator",
    )
    op.execute(
        "UPDATE allocator.gpu AS g SET pricing_class = p.pricing_class FROM allocator.gpu_pool AS p"
        " WHERE g.region = p.region AND g.gpu_type = p.gpu_type"
    )
    op.create_table(
        "capacity_change",
        sa.Column("request_id", sa.String(200), primary_key=True),
        sa.Column("recommendation_id", sa.String(200), nullable=False),
        sa.Column("region", sa.String(50), nullable=False),
        sa.Column("gpu_type", sa.String(50), nullable=False),
        sa.Column("requested", postgresql.JSONB, nullable=False),
        sa.Column("applied", postgresql.JSONB),
        sa.Column("result", sa.String(20), nullable=False),
        sa.Column("reason", sa.String(2000)),
        sa.Column("commitment_months", sa.Integer),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema="allocator",
    )


def downgrade() -> None:
    op.drop_table("capacity_change", schema="allocator")
    op.drop_column("gpu", "pricing_class", schema="allocator")
