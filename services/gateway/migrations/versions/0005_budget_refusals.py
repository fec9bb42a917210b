"""usage_meter.budget_refused: requests a tenant's budget refused, so the 100% budget alert fires when it is used up.

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
    op.add_column("usage_meter", sa.Column("budget_refused", sa.Integer, nullable=False, server_default="0"))


def downgrade() -> None:
    op.drop_column("usage_meter", "budget_refused")
