"""Inbox, outbox, pricing catalogue (seeded with the defaults), fleet, demand, recommendations, reports.

Revision ID: 0001
Revises:
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None

# The defaults as of this revision, written out: later edits go through the service, and a
# migration must not change meaning when the code's defaults move.
GPU_PRICES = [("a100_80gb", 4.10, 1.23, 2.87), ("h100_80gb", 8.00, 2.40, 5.60), ("v100_32gb", 2.48, 0.74, 1.74)]
REGIONS = [
    ("us-east-1", 1.00, 0.09),
    ("us-west-2", 1.05, 0.09),
    ("eu-west-1", 1.15, 0.12),
    ("ap-southeast-1", 1.25, 0.15),
]


def _ts(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "inbox",
        sa.Column("consumer", sa.String(100), nullable=False),
        sa.Column("event_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("consumer", "event_id", name="pk_inbox"),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("topic", sa.String(200), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        _ts("published_at"),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
    )
    op.create_index("ix_outbox_published_at", "outbox", ["published_at"])
    gpu = op.create_table(
        "gpu_price",
        sa.Column("gpu_type", sa.String(50), nullable=False),
        sa.Column("on_demand", sa.Float, nullable=False),
        sa.Column("spot", sa.Float, nullable=False),
        sa.Column("reserved", sa.Float, nullable=False),
        _ts("updated_at", nullable=False),
        sa.PrimaryKeyConstraint("gpu_type", name="pk_gpu_price"),
    )
    region = op.create_table(
        "region_price",
        sa.Column("region", sa.String(50), nullable=False),
        sa.Column("multiplier", sa.Float, nullable=False),
        sa.Column("egress_per_gb", sa.Float, nullable=False),
        _ts("updated_at", nullable=False),
        sa.PrimaryKeyConstraint("region", name="pk_region_price"),
    )
    op.create_table(
        "fleet_server",
        sa.Column("server_id", sa.String(200), nullable=False),
        sa.Column("region", sa.String(50), nullable=False),
        sa.Column("gpu_type", sa.String(50), nullable=False),
        sa.Column("gpu_count", sa.Integer, nullable=False),
        sa.Column("pricing_class", sa.String(20), nullable=False),
        sa.Column("cost_per_hour", sa.Float, nullable=False),
        _ts("allocated_at"),
        _ts("released_at"),
        sa.PrimaryKeyConstraint("server_id", name="pk_fleet_server"),
    )
    op.create_table(
        "server_model",
        sa.Column("server_id", sa.String(200), nullable=False),
        sa.Column("model_id", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("server_id", "model_id", name="pk_server_model"),
    )
    op.create_table(
        "server_utilization",
        sa.Column("server_id", sa.String(200), nullable=False),
        sa.Column("utilization", sa.Float, nullable=False),
        sa.Column("throughput_rps", sa.Float, nullable=False),
        _ts("reported_at", nullable=False),
        sa.PrimaryKeyConstraint("server_id", name="pk_server_utilization"),
    )
    op.create_table(
        "demand_window",
        sa.Column("event_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("model_id", sa.String(200), nullable=False),
        sa.Column("region", sa.String(50), nullable=False),
        _ts("window_start", nullable=False),
        _ts("window_end", nullable=False),
        sa.Column("requests", sa.Integer, nullable=False),
        sa.Column("tokens", sa.BigInteger, nullable=False),
        sa.Column("latency_p50_ms", sa.Float),
        sa.PrimaryKeyConstraint("event_id", name="pk_demand_window"),
    )
    op.create_index("ix_demand_window_window_end", "demand_window", ["window_end"])
    op.create_table(
        "forecast",
        sa.Column("model_id", sa.String(200), nullable=False),
        sa.Column("region", sa.String(50), nullable=False),
        _ts("horizon_start", nullable=False),
        sa.Column("requests_per_hour", postgresql.JSONB, nullable=False),
        _ts("received_at", nullable=False),
        sa.PrimaryKeyConstraint("model_id", "region", name="pk_forecast"),
    )
    op.create_table(
        "recommendation",
        sa.Column("recommendation_id", sa.String(100), nullable=False),
        sa.Column("key", sa.String(300), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("region", sa.String(50)),
        sa.Column("gpu_type", sa.String(50)),
        sa.Column("model_id", sa.String(200)),
        sa.Column("summary", sa.String(2000), nullable=False),
        sa.Column("savings_per_month", sa.Float, nullable=False),
        sa.Column("action", postgresql.JSONB, nullable=False),
        sa.Column("evidence", postgresql.JSONB, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        _ts("created_at", nullable=False),
        _ts("updated_at", nullable=False),
        sa.Column("applied_request", postgresql.JSONB),
        sa.PrimaryKeyConstraint("recommendation_id", name="pk_recommendation"),
    )
    op.create_index("ix_recommendation_key", "recommendation", ["key"])
    op.create_table(
        "cost_report",
        sa.Column("report_id", sa.String(100), nullable=False),
        sa.Column("trigger", sa.String(20), nullable=False),
        _ts("created_at", nullable=False),
        sa.Column("total_per_hour", sa.Float, nullable=False),
        sa.Column("body", postgresql.JSONB, nullable=False),
        sa.PrimaryKeyConstraint("report_id", name="pk_cost_report"),
    )
    op.create_index("ix_cost_report_created_at", "cost_report", ["created_at"])
    now = datetime.now(UTC)
    op.bulk_insert(
        gpu, [{"gpu_type": g, "on_demand": o, "spot": s, "reserved": r, "updated_at": now} for g, o, s, r in GPU_PRICES]
    )
    op.bulk_insert(
        region, [{"region": n, "multiplier": m, "egress_per_gb": e, "updated_at": now} for n, m, e in REGIONS]
    )


def downgrade() -> None:
    for table in ("cost_report", "recommendation", "forecast", "demand_window", "server_utilization", "server_model"):
        op.drop_table(table)
    for table in ("fleet_server", "region_price", "gpu_price", "outbox", "inbox"):
        op.drop_table(table)
