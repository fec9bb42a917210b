"""Indexes by time for the evaluation's reads and compaction.

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_demand_window_window_start", "demand_window", ["window_start"])
    op.create_index("ix_scaling_action_requested_at", "scaling_action", ["requested_at"])


def downgrade() -> None:
    op.drop_index("ix_scaling_action_requested_at", table_name="scaling_action")
    op.drop_index("ix_demand_window_window_start", table_name="demand_window")
