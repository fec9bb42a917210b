"""Fixtures of the monitor's integration tests: migrated settings with a fresh consumer group."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from services.monitor.app import migrate
from services.monitor.settings import MonitorSettings


@pytest.fixture
async def monitor_settings(kafka_bootstrap: str, database_url) -> MonitorSettings:
    settings = MonitorSettings(
        kafka_bootstrap=kafka_bootstrap,
        database_url=database_url("monitor"),
        consumer_group=f"test-monitor-{uuid.uuid4().hex[:8]}",
        scrape_interval_s=0.5,
        report_interval_s=0.5,
        scrape_timeout_s=1.0,
        window_s=30.0,
        signal_cooldown_s=3600.0,
        lag_check_interval_s=3600.0,
    )
    await asyncio.to_thread(migrate, settings)
    return settings
