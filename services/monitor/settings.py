"""The monitor's settings (`LLMFLEET_MONITOR_*`)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class MonitorSettings(ServiceSettings):
    """Settings of the monitor service."""

    model_config = SettingsConfigDict(env_prefix="LLMFLEET_MONITOR_", extra="ignore", frozen=True)

    service_name: str = Field(
        default="monitor", description="the service's name: its schema, role and default consumer group"
    )
    scrape_interval_s: float = Field(
        default=5.0, gt=0, description="how often every Triton server's metrics are scraped"
    )
    scrape_timeout_s: float = Field(default=2.0, gt=0, description="per target, connect to last byte")
    scrape_concurrency: int = Field(default=200, ge=1, description="targets scraped at once")
    target_down_after: int = Field(default=3, ge=1, description="failed scrapes in a row that make a target down")
    window_s: float = Field(default=60.0, gt=0, description="sliding window of the server aggregates")
    report_interval_s: float = Field(default=15.0, gt=0, description="store and publish server windows this often")
    retention_s: float = Field(
        default=86400.0,
        gt=0,
        description="metric windows and demand rows kept (inbox: inbox_retention_s)",
    )
    publish_server_metrics: bool = Field(default=True, description="ServerMetricsReported with each report")
    signal_cooldown_s: float = Field(default=60.0, ge=0, description="least time between equal signals")
    lag_check_interval_s: float = Field(default=30.0, gt=0, description="how often consumer groups' lag is checked")
    lag_threshold: int = Field(default=1000, ge=1, description="messages behind that make a group lag")
    lag_group_prefix: str = Field(default="llmfleet-", description="consumer groups watched for lag")
