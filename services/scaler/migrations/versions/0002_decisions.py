"""Utilisation, placements, signals, forecasts, scaling actions and model tiers.

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "server_utilization",
        sa.Column("server_id", sa.String(200), nullable=False),
        sa.Column("model_id", sa.String(200), nullable=False),
        sa.Column("region", sa.String(50), nullable=False),
        sa.Column("utilization", sa.Float, nullable=False),
        sa.Column("queue_depth", sa.Float, nullable=False),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("server_id", "model_id", name="pk_server_utilization"),
    )
    op.create_table(
        "model_placement",
        sa.Column("server_id", sa.String(200), nullable=False),
        sa.Column("model_id", sa.String(200), nullable=False),
        sa.Column("region", sa.String(50), nullable=False),
        sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("server_id", "model_id", name="pk_model_placement"),
    )
    op.create_index("ix_model_placement_model_region", "model_placement", ["model_id", "region"])
    op.create_table(
        "scaling_signal",
        sa.Column("event_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("model_id", sa.String(200)),
        sa.Column("region", sa.String(50)),
        sa.Column("server_id", sa.String(200)),
        sa.Column("kind", sa.String(30), nullable=False),
        sa.Column("metric", sa.String(100), nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("threshold", sa.Float, nullable=False),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name="pk_scaling_signal"),
    )
    op.create_index("ix_scaling_signal_model_time", "scaling_signal", ["model_id", "raised_at"])
    op.create_table(
        "forecast",
        sa.Column("event_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("model_id", sa.String(200), nullable=False),
        sa.Column("region", sa.String(50), nullable=False),
        sa.Column("made_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("horizon_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("bucket_s", sa.Integer, nullable=False),
        sa.Column("requests_per_hour", postgresql.JSONB, nullable=False),
        sa.Column("confidence", sa.Float, nullable=False),
        sa.Column("predictors", postgresql.JSONB, nullable=False),
        sa.Column("weights", postgresql.JSONB, nullable=False),
        sa.Column("backtest_smape", postgresql.JSONB, nullable=False),
        sa.PrimaryKeyConstraint("event_id", name="pk_forecast"),
    )
    op.create_index("ix_forecast_model_time", "forecast", ["model_id", "region", "made_at"])
    op.create_table(
        "scaling_action",
        sa.Column("action_id", sa.String(100), nullable=False),
        sa.Column("model_id", sa.String(200), nullable=False),
        sa.Column("region", sa.String(50), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("current_instances", sa.Integer, nullable=False),
        sa.Column("target_instances", sa.Integer, nullable=False),
        sa.Column("priority", sa.String(10), nullable=False),
        sa.Column("rule", sa.String(50), nullable=False),
        sa.Column("policy", sa.String(30), nullable=False),
        sa.Column("tier", sa.String(10), nullable=False),
        sa.Column("utilization", sa.Float),
        sa.Column("forecast_rph", sa.Float, nullable=False),
        sa.Column("confidence", sa.Float, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("action_id", name="pk_scaling_action"),
    )
    op.create_index("ix_scaling_action_model_region_time", "scaling_action", ["model_id", "region", "requested_at"])
    op.create_index(
        "uq_scaling_action_one_pending",
        "scaling_action",
        ["model_id", "region"],
        unique=True,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_table(
        "model_tier",
        sa.Column("model_id", sa.String(200), nullable=False),
        sa.Column("tier", sa.String(10), nullable=False),
        sa.Column("requests_per_hour", sa.Float, nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("evaluated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("model_id", name="pk_model_tier"),
    )


def downgrade() -> None:
    for table in (
        "model_tier",
        "scaling_action",
        "forecast",
        "scaling_signal",
        "model_placement",
        "server_utilization",
    ):
        op.drop_table(table)
