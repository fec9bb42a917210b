"""outbox.traceparent: the W3C trace context an outbox row was written in, so its consumers continue the trace

Revision ID: 0006_outbox_trace
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_outbox_trace"
down_revision: str | None = "0005"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: rows written before this, or outside any trace, are relayed as before.
    op.add_column("outbox", sa.Column("traceparent", sa.String(128)))


def downgrade() -> None:
    op.drop_column("outbox", "traceparent")
