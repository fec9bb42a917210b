"""A benchmark's rows in the monitor's and the gateway's schemas are removed after it, and only its own."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from benchmarks.leftovers import forget_gateway_tenant, forget_monitor_run
from services.gateway.adapters import orm as gateway
from services.gateway.app import migrate as migrate_gateway
from services.gateway.settings import GatewaySettings
from services.monitor.adapters import orm as monitor
from services.monitor.app import migrate as migrate_monitor
from services.monitor.settings import MonitorSettings
from shared.db import create_engine, session_factory

pytestmark = pytest.mark.integration
NOW = datetime.now(UTC)


@pytest.fixture
async def sessions_of(database_url) -> AsyncIterator:
    engines = []

    async def open_(service: str, migrate, settings_class) -> async_sessionmaker[AsyncSession]:
        url = database_url(service)
        await asyncio.to_thread(migrate, settings_class(database_url=url))
        engines.append(create_engine(url, service, pool_size=1))
        return session_factory(engines[-1])

    yield open_
    for engine in engines:
        await engine.dispose()


def target(server_id: str) -> dict:
    return dict(server_id=server_id, endpoint="127.0.0.1:1", metrics_url="http://127.0.0.1:1/metrics",
                region="bench-0", gpu_type="a100_80gb", gpu_count=1, cost_per_hour=4.1, pricing_class="on_demand",
                allocated_at=NOW)  # fmt: skip


def alert(scope: dict[str, str]) -> dict:
    key = ",".join(f"{k}={v}" for k, v in sorted(scope.items()))
    return dict(rule="latency_p95_high", scope_key=key, scope=scope, severity="high", phase="ok", updated_at=NOW)


async def count(sessions, table, *where) -> int:
    async with sessions() as session:
        return int((await session.execute(select(func.count()).select_from(table).where(*where))).scalar_one())


async def test_a_monitor_run_leaves_no_targets_windows_or_alerts_and_others_stay(sessions_of):
    sessions = await sessions_of("monitor", migrate_monitor, MonitorSettings)
    run, other = f"bench-{uuid.uuid4().hex[:8]}-", f"keep-{uuid.uuid4().hex[:8]}-"
    async with sessions.begin() as session:
        for prefix in (run, other):
            await session.execute(monitor.scrape_target.insert().values(target(f"{prefix}t1-0")))
            await session.execute(monitor.alert_state.insert().values(alert({"model_id": f"{prefix}0"})))
            await session.execute(
                monitor.alert_state.insert().values(alert({"region": "bench-0", "server_id": f"{prefix}t1-0"}))
            )
            await session.execute(
                monitor.demand_window.insert().values(
                    event_id=uuid.uuid4(), model_id=f"{prefix}0", region="bench", window_start=NOW, window_end=NOW,
                    requests=1, failed=0, rejected=0, tokens=1,
                )
            )  # fmt: skip
            await session.execute(
                monitor.alert_history.insert().values(
                    alert_id=f"x/{prefix}", rule="latency_p95_high", severity="high", state="firing", value=1.0,
                    threshold=1.0, scope={"model_id": f"{prefix}0"}, occurred_at=NOW,
                )
            )  # fmt: skip

    try:
        await forget_monitor_run(sessions, run)

        for prefix, kept in ((run, 0), (other, 1)):
            targets, states = monitor.scrape_target.c, monitor.alert_state.c
            assert await count(sessions, monitor.scrape_target, targets.server_id.like(f"{prefix}%")) == kept
            assert await count(sessions, monitor.alert_state, states.scope_key.like(f"%={prefix}%")) == 2 * kept
            windows = monitor.demand_window.c.model_id.like(f"{prefix}%")
            assert await count(sessions, monitor.demand_window, windows) == kept
            history = monitor.alert_history.c.alert_id == f"x/{prefix}"
            assert await count(sessions, monitor.alert_history, history) == kept
    finally:  # the kept rows too: a monitor on the shared stack would scrape the target and alert on it
        await forget_monitor_run(sessions, other)
        await forget_monitor_run(sessions, run)


async def test_a_gateway_run_leaves_no_tenant_key_or_usage(sessions_of):
    sessions = await sessions_of("gateway", migrate_gateway, GatewaySettings)
    tenant_id, key_id = uuid.uuid4().hex, uuid.uuid4().hex
    subjects = (f"key:{key_id}", f"tenant:{tenant_id}")
    async with sessions.begin() as session:
        await session.execute(gateway.tenant.insert().values(tenant_id=tenant_id, name=f"bench-{tenant_id[:8]}",
                                                             created_at=NOW))  # fmt: skip
        await session.execute(
            gateway.api_key.insert().values(
                key_id=key_id, tenant_id=tenant_id, name="bench", key_hash=key_id, prefix="llm-x", scopes=[],
                created_at=NOW,
            )
        )  # fmt: skip
        for subject in subjects:
            await session.execute(gateway.usage_window.insert().values(subject=subject, window_start=NOW, requests=1,
                                                                       tokens=1))  # fmt: skip
            await session.execute(gateway.inflight.insert().values(subject=subject, requests=0))
            await session.execute(gateway.lease.insert().values(request_id="r1", subject=subject, expires_at=NOW))

    await forget_gateway_tenant(sessions, tenant_id, key_id)  # also what cleans up after this test

    assert await count(sessions, gateway.tenant, gateway.tenant.c.tenant_id == tenant_id) == 0
    assert await count(sessions, gateway.api_key, gateway.api_key.c.key_id == key_id) == 0
    for table in (gateway.usage_window, gateway.inflight, gateway.lease):
        assert await count(sessions, table, table.c.subject.in_(subjects)) == 0, table.name
