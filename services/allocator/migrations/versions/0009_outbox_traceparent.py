"""outbox.traceparent and scaling_action.traceparent: the W3C trace context a row was written in

An outbox row's consumers continue its trace; an action's provisioning work continues the trace
of the event that requested it.

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: rows written before this, or outside any trace, are relayed as before.
    op.add_column("outbox", sa.Column("traceparent", sa.String(128)))
    op.add_column("scaling_action", sa.Column("traceparent", sa.String(128)))


def downgrade() -> None:
    op.drop_column("scaling_action", "traceparent")
    op.drop_column("outbox", "traceparent")
