"""Signals keep their size and GPU type; the measured capacity per model and GPU type.

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: rows recorded before have no size (the policy's own factor applies to them).
    op.add_column("scaling_signal", sa.Column("factor", sa.Float))
    op.add_column("scaling_signal", sa.Column("gpu_type", sa.String(50)))
    op.create_table(
        "capacity_estimate",
        sa.Column("model_id", sa.String(200), nullable=False),
        sa.Column("gpu_type", sa.String(50), nullable=False),
        sa.Column("requests_per_hour", sa.Float, nullable=False),
        sa.Column("samples", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("model_id", "gpu_type", name="pk_capacity_estimate"),
    )


def downgrade() -> None:
    op.drop_table("capacity_estimate")
    op.drop_column("scaling_signal", "gpu_type")
    op.drop_column("scaling_signal", "factor")
