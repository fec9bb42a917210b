"""Inbox, outbox, scrape targets, prices, metric windows, alert rules (seeded), states and history.

Revision ID: 0001
Revises:
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)

# The thresholds (name, metric, direction, threshold, severity, for_s, hysteresis).
# Written out here rather than imported: a migration must not change when the code does.
SEED_RULES = [
    ("gpu_utilization_high", "gpu_utilization", "above", 0.9, "high", 300, 0.05),
    ("gpu_utilization_low", "gpu_utilization", "below", 0.2, "info", 900, 0.05),
    ("latency_p95_high", "latency_p95_ms", "above", 3000, "high", 60, 250),
    ("latency_p95_critical", "latency_p95_ms", "above", 5000, "critical", 60, 250),
    ("error_rate_high", "error_rate", "above", 0.05, "high", 60, 0.01),
    ("error_rate_critical", "error_rate", "above", 0.10, "critical", 60, 0.01),
    ("cost_per_token_high", "cost_per_token", "above", 0.001, "high", 600, 0.0001),
    ("cost_per_token_critical", "cost_per_token", "above", 0.002, "critical", 600, 0.0001),
    ("queue_depth_high", "queue_depth", "above", 100, "high", 60, 10),
    ("queue_depth_critical", "queue_depth", "above", 500, "critical", 60, 10),
    ("scaling_action_overdue", "scaling_action_wait_s", "above", 1, "high", 0, 0),
]


def upgrade() -> None:
    op.create_table(
        "inbox",
        sa.Column("consumer", sa.String(100), nullable=False),
        sa.Column("event_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("received_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("consumer", "event_id", name="pk_inbox"),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("topic", sa.String(200), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("created_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.Column("published_at", TZ),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
    )
    op.create_index("ix_outbox_published_at", "outbox", ["published_at"])
    op.create_table(
        "scrape_target",
        sa.Column("server_id", sa.String(200), nullable=False),
        sa.Column("endpoint", sa.String(300), nullable=False),
        sa.Column("metrics_url", sa.String(500), nullable=False),
        sa.Column("region", sa.String(50), nullable=False),
        sa.Column("gpu_type", sa.String(50), nullable=False),
        sa.Column("gpu_count", sa.Integer, nullable=False),
        sa.Column("cost_per_hour", sa.Float, nullable=False),
        sa.Column("pricing_class", sa.String(20), nullable=False),
        sa.Column("allocated_at", TZ, nullable=False),
        sa.Column("consecutive_failures", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_scraped_at", TZ),
        sa.Column("last_error", sa.String(500)),
        sa.PrimaryKeyConstraint("server_id", name="pk_scrape_target"),
    )
    op.create_table(
        "server_model",
        sa.Column("server_id", sa.String(200), nullable=False),
        sa.Column("model_id", sa.String(200), nullable=False),
        sa.Column("triton_model", sa.String(200), nullable=False),
        sa.Column("region", sa.String(50), nullable=False),
        sa.PrimaryKeyConstraint("server_id", "model_id", name="pk_server_model"),
    )
    op.create_table(
        "price",
        sa.Column("region", sa.String(50), nullable=False),
        sa.Column("gpu_type", sa.String(50), nullable=False),
        sa.Column("on_demand_per_hour", sa.Float, nullable=False),
        sa.Column("spot_per_hour", sa.Float, nullable=False),
        sa.Column("reserved_per_hour", sa.Float, nullable=False),
        sa.Column("published_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("region", "gpu_type", name="pk_price"),
    )
    op.create_table(
        "demand_window",
        sa.Column("event_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("model_id", sa.String(200), nullable=False),
        sa.Column("region", sa.String(50), nullable=False),
        sa.Column("window_start", TZ, nullable=False),
        sa.Column("window_end", TZ, nullable=False),
        sa.Column("requests", sa.Integer, nullable=False),
        sa.Column("failed", sa.Integer, nullable=False),
        sa.Column("rejected", sa.Integer, nullable=False),
        sa.Column("tokens", sa.BigInteger, nullable=False),
        sa.Column("latency_p50_ms", sa.Float),
        sa.Column("latency_p95_ms", sa.Float),
        sa.Column("latency_p99_ms", sa.Float),
        sa.Column("cost_per_token", sa.Float),
        sa.PrimaryKeyConstraint("event_id", name="pk_demand_window"),
    )
    op.create_index("ix_demand_window_window_end", "demand_window", ["window_end"])
    op.create_index("ix_demand_window_model_time", "demand_window", ["model_id", "region", "window_end"])
    op.create_table(
        "metric_window",
        sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("server_id", sa.String(200), nullable=False),
        sa.Column("model_id", sa.String(200), nullable=False),
        sa.Column("region", sa.String(50), nullable=False),
        sa.Column("gpu_type", sa.String(50), nullable=False),
        sa.Column("window_end", TZ, nullable=False),
        sa.Column("window_s", sa.Float, nullable=False),
        sa.Column("utilization", sa.Float, nullable=False),
        sa.Column("utilization_derived", sa.Boolean, nullable=False),
        sa.Column("queue_depth", sa.Float, nullable=False),
        sa.Column("requests_ok", sa.Integer, nullable=False),
        sa.Column("requests_failed", sa.Integer, nullable=False),
        sa.Column("throughput_rps", sa.Float, nullable=False),
        sa.Column("error_rate", sa.Float),
        sa.Column("latency_avg_ms", sa.Float),
        sa.Column("cost_per_hour", sa.Float),
        sa.PrimaryKeyConstraint("id", name="pk_metric_window"),
    )
    op.create_index("ix_metric_window_window_end", "metric_window", ["window_end"])
    op.create_index("ix_metric_window_server_time", "metric_window", ["server_id", "window_end"])
    rules = op.create_table(
        "alert_rule",
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("metric", sa.String(50), nullable=False),
        sa.Column("direction", sa.String(10), nullable=False),
        sa.Column("threshold", sa.Float, nullable=False),
        sa.Column("severity", sa.String(20), nullable=False),
        sa.Column("for_s", sa.Float, nullable=False),
        sa.Column("hysteresis", sa.Float, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("updated_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("name", name="pk_alert_rule"),
    )
    keys = ("name", "metric", "direction", "threshold", "severity", "for_s", "hysteresis")
    op.bulk_insert(rules, [{**dict(zip(keys, row, strict=True)), "enabled": True} for row in SEED_RULES])
    op.create_table(
        "alert_state",
        sa.Column("rule", sa.String(100), nullable=False),
        sa.Column("scope_key", sa.String(500), nullable=False),
        sa.Column("scope", postgresql.JSONB, nullable=False),
        sa.Column("severity", sa.String(20), nullable=False),
        sa.Column("phase", sa.String(10), nullable=False),
        sa.Column("since", TZ),
        sa.Column("fired_at", TZ),
        sa.Column("value", sa.Float),
        sa.Column("updated_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("rule", "scope_key", name="pk_alert_state"),
    )
    op.create_table(
        "alert_history",
        sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("alert_id", sa.String(800), nullable=False),
        sa.Column("rule", sa.String(100), nullable=False),
        sa.Column("severity", sa.String(20), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("threshold", sa.Float, nullable=False),
        sa.Column("scope", postgresql.JSONB, nullable=False),
        sa.Column("occurred_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alert_history"),
    )
    op.create_index("ix_alert_history_alert_id", "alert_history", ["alert_id"])
    op.create_table(
        "signal_state",
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("scope_key", sa.String(500), nullable=False),
        sa.Column("raised_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("kind", "scope_key", name="pk_signal_state"),
    )


def downgrade() -> None:
    for table in (
        "signal_state", "alert_history", "alert_state", "alert_rule", "metric_window",
        "demand_window", "price", "server_model", "scrape_target", "outbox", "inbox",
    ):  # fmt: skip
        op.drop_table(table)
