"""Each minute row and in-flight row carries the limit it was admitted under (batch admission compares to it).

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("usage_window", sa.Column("rpm_limit", sa.BigInteger))
    op.add_column("usage_window", sa.Column("tpm_limit", sa.BigInteger))
    op.add_column("inflight", sa.Column("concurrency_limit", sa.BigInteger))


def downgrade() -> None:
    op.drop_column("inflight", "concurrency_limit")
    op.drop_column("usage_window", "tpm_limit")
    op.drop_column("usage_window", "rpm_limit")
