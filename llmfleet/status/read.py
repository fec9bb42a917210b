"""Reads for `llmfleet status`: each service's own tables, and the router's metrics endpoint."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

from services.allocator.adapters import orm as allocator
from services.cost.adapters import orm as cost
from services.monitor.adapters import orm as monitor
from services.scaler.adapters import orm as scaler

T = TypeVar("T")
Rows = list[dict[str, Any]]
GONE = ("released", "failed")
UNDEFINED_TABLE = "42P01"


async def read_service(
    url: str, service: str, read: Callable[[AsyncConnection], Awaitable[T]], notes: list[str]
) -> T | None:
    """Run `read` on a short-lived engine of the service's role; None and a note when it cannot."""
    engine = create_async_engine(url, poolclass=NullPool, connect_args={"timeout": 5})
    try:
        async with engine.connect() as connection:
            return await read(connection)
    # A diagnostic must outlive what it diagnoses: any failure of one service's read (refused,
    # wrong password, no schema yet) becomes a note and an empty section, never a crash.
    except Exception as exc:
        orig = getattr(exc, "orig", None) or exc
        if getattr(orig, "sqlstate", None) == UNDEFINED_TABLE:
            notes.append(f"{service}: tables not migrated yet")
        else:
            notes.append(f"{service}: database unavailable ({type(orig).__name__}: {str(orig)[:120]})")
    finally:
        await engine.dispose()
    return None


def _rows(result: Any) -> Rows:
    return [dict(row) for row in result.mappings()]


async def read_allocator(connection: AsyncConnection) -> tuple[Rows, Rows]:
    """Servers not released or failed, and the placements on them with the deployment plan each runs."""
    servers = _rows(await connection.execute(select(allocator.server).where(allocator.server.c.state.not_in(GONE))))
    live = select(allocator.server.c.server_id).where(allocator.server.c.state.not_in(GONE))
    plan = allocator.deployment_plan
    on_plan = (plan.c.server_id == allocator.placement.c.server_id) & (
        plan.c.model_id == allocator.placement.c.model_id
    )
    placed = (
        select(allocator.placement, plan.c.strategy, plan.c.quantisation, plan.c.gpus.label("plan_gpus"))
        .select_from(allocator.placement.outerjoin(plan, on_plan))
        .where(allocator.placement.c.server_id.in_(live))
    )
    return servers, _rows(await connection.execute(placed))


async def read_scaler(connection: AsyncConnection) -> tuple[Rows, Rows]:
    """Every model's tier, and each model's latest scaling action (any region)."""
    tiers = _rows(await connection.execute(select(scaler.model_tier)))
    action = scaler.scaling_action
    latest = (
        select(action)
        .distinct(action.c.model_id)
        .order_by(action.c.model_id, action.c.requested_at.desc(), action.c.action_id.desc())
    )
    return tiers, _rows(await connection.execute(latest))


async def read_monitor(connection: AsyncConnection) -> Rows:
    """Alert states in the firing phase."""
    state = monitor.alert_state
    return _rows(await connection.execute(select(state).where(state.c.phase == "firing")))


async def read_cost(connection: AsyncConnection) -> tuple[dict[str, Any] | None, int, float | None]:
    """The latest cost report, and the open recommendations' count and savings per month."""
    report = cost.cost_report
    latest = select(report).order_by(report.c.created_at.desc(), report.c.report_id.desc()).limit(1)
    row = (await connection.execute(latest)).mappings().first()
    rec = cost.recommendation
    opened = select(func.count(), func.sum(rec.c.savings_per_month)).where(rec.c.status == "open")
    count, savings = (await connection.execute(opened)).one()
    return (dict(row) if row else None), int(count), savings


async def read_metrics(url: str, notes: list[str], timeout_s: float = 3.0) -> str | None:
    """The router's Prometheus exposition text; None and a note when the endpoint does not answer."""
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session,
            session.get(url) as response,
        ):
            response.raise_for_status()
            return await response.text()
    except Exception as exc:  # refused, timed out, HTTP error, a malformed URL: all mean "no queues"
        notes.append(f"router metrics at {url} did not answer ({exc.__class__.__name__})")
        return None
