"""Spot reclaims: when the cloud takes a draining server back

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    # Set by a SpotInterruptionNotice: the server drains (state `draining`) until then.
    op.add_column("server", sa.Column("reclaim_at", sa.DateTime(timezone=True), nullable=True), schema="allocator")


def downgrade() -> None:
    op.drop_column("server", "reclaim_at", schema="allocator")
