"""pool_capacity: each pool's GPUs per pricing class as the allocator announced them (CapacityChanged)

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pool_capacity",
        sa.Column("region", sa.String(50), nullable=False),
        sa.Column("gpu_type", sa.String(50), nullable=False),
        sa.Column("on_demand", sa.Integer, nullable=False),
        sa.Column("spot", sa.Integer, nullable=False),
        sa.Column("reserved", sa.Integer, nullable=False),
        sa.Column("commitment_months", sa.Integer),
        sa.Column("request_id", sa.String(200), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("region", "gpu_type", name="pk_pool_capacity"),
    )


def downgrade() -> None:
    op.drop_table("pool_capacity")
