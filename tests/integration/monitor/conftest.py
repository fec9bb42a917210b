"""Fixtures of the monitor's integration tests: migrated settings with a fresh consumer group."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import create_async_engine

from services.monitor.adapters.orm import alert_state, scrape_target, server_model
from services.monitor.app import migrate
from services.monitor.settings import MonitorSettings


async def forget_leftover_targets(url: str) -> None:
    """Drop scrape targets earlier runs left behind (their release came while no monitor ran).

    A test's monitor reads every ServerAllocated sent on the shared broker during the test, other
    engineers' included, and scrapes every target in the table; without this, dead targets pile up.
    """
    engine = create_async_engine(url)
    async with engine.begin() as connection:
        servers = list((await connection.execute(select(scrape_target.c.server_id))).scalars())
        await connection.execute(delete(server_model))
        await connection.execute(delete(scrape_target))
        await connection.execute(
            delete(alert_state).where(
                alert_state.c.rule == "scrape_target_down", alert_state.c.scope["server_id"].astext.in_(servers)
            )
        )
    await engine.dispose()


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
    await forget_leftover_targets(settings.database_url)
    return settings
