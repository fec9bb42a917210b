"""The delivery_attempt table: deliveries of a record that did not finish, counted across restarts (shared.delivery).

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    # Written out rather than taken from shared.delivery: a migration must not change when the code does.
    op.create_table(
        "delivery_attempt",
        sa.Column("consumer_group", sa.String(300), nullable=False),
        sa.Column("topic", sa.String(200), nullable=False),
        sa.Column("partition", sa.Integer, nullable=False),
        sa.Column("record_offset", sa.BigInteger, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.String(2000)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("consumer_group", "topic", "partition", "record_offset", name="pk_delivery_attempt"),
    )


def downgrade() -> None:
    op.drop_table("delivery_attempt")
