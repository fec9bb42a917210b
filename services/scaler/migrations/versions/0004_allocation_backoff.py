"""Refusals from the allocator per model and region: the scaler's backoff and capacity alert state.

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "allocation_backoff",
        sa.Column("model_id", sa.String(200), nullable=False),
        sa.Column("region", sa.String(50), nullable=False),
        sa.Column("refusals", sa.Integer, nullable=False),
        sa.Column("last_refused_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_reason", sa.Text, nullable=False),
        sa.Column("alert_fired_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("model_id", "region", name="pk_allocation_backoff"),
    )


def downgrade() -> None:
    op.drop_table("allocation_backoff")
