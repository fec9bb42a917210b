"""Control path: action priority and ownership, server health, pool assignments on record

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

SCHEMA = "allocator"


def upgrade() -> None:
    # Actions are carried out by a worker off the consumer loop: served by priority, then age, by
    # one owner at a time (a lease, so a dead owner's action is taken over).
    op.add_column(
        "scaling_action", sa.Column("priority", sa.Integer(), nullable=False, server_default="1"), schema=SCHEMA
    )
    op.add_column(
        "scaling_action", sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"), schema=SCHEMA
    )
    op.add_column("scaling_action", sa.Column("owner", sa.String(length=200), nullable=True), schema=SCHEMA)
    op.add_column("scaling_action", sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True), schema=SCHEMA)
    op.create_index("ix_scaling_action_queue", "scaling_action", ["state", "priority", "created_at"], schema=SCHEMA)
    # When the reconciler first found the server not answering; NULL while it answers.
    op.add_column("server", sa.Column("unhealthy_since", sa.DateTime(timezone=True), nullable=True), schema=SCHEMA)
    # Which pool server (a deployment's Triton) a server id was handed, so a restart knows.
    op.create_table(
        "pool_assignment",
        sa.Column("endpoint", sa.String(length=200), primary_key=True),
        sa.Column("server_id", sa.String(length=200), nullable=False, unique=True),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("pool_assignment", schema=SCHEMA)
    op.drop_column("server", "unhealthy_since", schema=SCHEMA)
    op.drop_index("ix_scaling_action_queue", table_name="scaling_action", schema=SCHEMA)
    for column in ("lease_until", "owner", "attempts", "priority"):
        op.drop_column("scaling_action", column, schema=SCHEMA)
