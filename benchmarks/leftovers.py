"""What a benchmark wrote into a service's schema, removed when it ends (also after an error or Ctrl-C).

A benchmark runs against the local stack that `llmfleet up` uses too; rows it leaves there (scrape
targets, alert states, tenants and keys) would otherwise be read, scraped or listed by later runs.
Everything a run writes carries its run id (`bench-<run>-...`), so only its own rows go.
"""

from __future__ import annotations

from sqlalchemy import delete, or_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.gateway.adapters import orm as gateway
from services.monitor.adapters import orm as monitor


async def forget_monitor_run(sessions: async_sessionmaker[AsyncSession], prefix: str) -> None:
    """Delete the monitor's rows about servers and models whose ids start with `prefix`."""
    like = f"{prefix}%"
    scoped = f"%={prefix}%"  # scope keys are "model_id=<id>" / "server_id=<id>,..." joined
    async with sessions.begin() as session:
        for table in (monitor.scrape_target, monitor.server_model, monitor.metric_window):
            await session.execute(delete(table).where(table.c.server_id.like(like)))
        await session.execute(delete(monitor.demand_window).where(monitor.demand_window.c.model_id.like(like)))
        for table in (monitor.alert_state, monitor.signal_state):
            await session.execute(delete(table).where(table.c.scope_key.like(scoped)))
        history = monitor.alert_history.c
        await session.execute(
            delete(monitor.alert_history).where(
                or_(history.scope["model_id"].astext.like(like), history.scope["server_id"].astext.like(like))
            )
        )


async def forget_gateway_tenant(sessions: async_sessionmaker[AsyncSession], tenant_id: str, key_id: str) -> None:
    """Delete a benchmark's tenant, its key, and the usage, in-flight, lease, month and meter rows of both."""
    subjects = (f"key:{key_id}", f"tenant:{tenant_id}")
    async with sessions.begin() as session:
        for table in (gateway.usage_window, gateway.inflight, gateway.lease, gateway.budget_month):
            await session.execute(delete(table).where(table.c.subject.in_(subjects)))
        await session.execute(delete(gateway.usage_meter).where(gateway.usage_meter.c.tenant_id == tenant_id))
        await session.execute(delete(gateway.api_key).where(gateway.api_key.c.tenant_id == tenant_id))
        await session.execute(delete(gateway.tenant).where(gateway.tenant.c.tenant_id == tenant_id))
