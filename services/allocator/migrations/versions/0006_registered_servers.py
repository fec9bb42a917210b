"""Servers other deployments registered on the allocations topic, watched for retirement

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
    op.create_table(
        "registered_server",
        sa.Column("server_id", sa.String(length=200), primary_key=True),
        sa.Column("endpoint", sa.String(length=200), nullable=False),
        sa.Column("region", sa.String(length=50), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("unanswered_since", sa.DateTime(timezone=True), nullable=True),
        schema="allocator",
    )


def downgrade() -> None:
    op.drop_table("registered_server", schema="allocator")
