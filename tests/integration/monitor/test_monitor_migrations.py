"""The monitor's migrations seed the issue's rules (drift: tests/integration/test_migrations.py)."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from services.monitor.adapters.orm import alert_rule
from services.monitor.domain.rules import DEFAULT_RULES

pytestmark = pytest.mark.integration


async def test_the_seeded_rules_are_the_domain_defaults(monitor_settings):
    engine = create_async_engine(monitor_settings.database_url)
    async with engine.connect() as connection:
        rows = (
            await connection.execute(select(alert_rule).where(alert_rule.c.name.in_([r.name for r in DEFAULT_RULES])))
        ).all()
    await engine.dispose()
    seeded = {r.name: (r.metric, r.direction, r.threshold, r.severity, r.for_s, r.hysteresis) for r in rows}
    expected = {
        r.name: (r.metric.value, r.direction.value, r.threshold, r.severity.value, r.for_s, r.hysteresis)
        for r in DEFAULT_RULES
    }
    assert seeded == expected
