"""Monthly budgets: a budget (USD) per tenant and per key, spend per subject and month, and the usage meter.

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
    for table in ("tenant", "api_key"):
        op.add_column(table, sa.Column("monthly_budget_usd", sa.Numeric(18, 9)))
    op.create_table(
        "budget_month",
        sa.Column("subject", sa.String(80), nullable=False),
        sa.Column("month_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("spent_nanos", sa.BigInteger, nullable=False),
        sa.Column("budget_nanos", sa.BigInteger),
        sa.PrimaryKeyConstraint("subject", "month_start", name="pk_budget_month"),
    )
    op.create_table(
        "usage_meter",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("model_id", sa.String(200), nullable=False),
        sa.Column("requests", sa.Integer, nullable=False),
        sa.Column("failed", sa.Integer, nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger, nullable=False),
        sa.Column("completion_tokens", sa.BigInteger, nullable=False),
        sa.Column("cost_nanos", sa.BigInteger, nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "model_id", name="pk_usage_meter"),
    )


def downgrade() -> None:
    op.drop_table("usage_meter")
    op.drop_table("budget_month")
    for table in ("api_key", "tenant"):
        op.drop_column(table, "monthly_budget_usd")
