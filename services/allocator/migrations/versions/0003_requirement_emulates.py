"""Model requirements name their model in the GPU performance model

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    # NULL: a requirement seeded before: its stored min_memory_gb and latency_ms stay in use.
    op.add_column("model_requirement", sa.Column("emulates", sa.String(length=200), nullable=True), schema="allocator")


def downgrade() -> None:
    op.drop_column("model_requirement", "emulates", schema="allocator")
