"""The monitor's retention on real PostgreSQL: windows older than `retention_s` go, newer ones stay."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from services.monitor.adapters.orm import metric_window
from services.monitor.jobs import retained
from shared.db import create_engine, session_factory
from shared.retention import prune

pytestmark = pytest.mark.integration


def row(server_id: str, end: datetime) -> dict:
    return {
        "server_id": server_id, "model_id": "", "region": "r", "gpu_type": "g", "window_end": end, "window_s": 60.0,
        "utilization": 0.5, "utilization_derived": True, "queue_depth": 0.0, "requests_ok": 1, "requests_failed": 0,
        "throughput_rps": 1.0,
    }  # fmt: skip


async def test_prune_removes_only_what_is_older_than_retention(monitor_settings):
    engine = create_engine(monitor_settings.database_url, "monitor")
    sessions = session_factory(engine)
    server_id, now = f"retention-{uuid.uuid4().hex[:8]}", datetime.now(UTC)
    retention = timedelta(seconds=monitor_settings.retention_s)
    async with sessions.begin() as session:
        await session.execute(
            metric_window.insert(),
            [
                row(server_id, now - retention - timedelta(minutes=1)),
                row(server_id, now - retention + timedelta(minutes=1)),
            ],
        )
    removed = await prune(sessions, "monitor.retention", retained(monitor_settings), now, batch_rows=10_000)
    assert removed is not None and removed["metric_window"] >= 1
    async with sessions() as session:
        query = select(metric_window.c.window_end).where(metric_window.c.server_id == server_id)
        kept = list((await session.execute(query)).scalars())
    assert kept == [now - retention + timedelta(minutes=1)]
    await engine.dispose()
