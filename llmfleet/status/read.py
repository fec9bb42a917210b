"""Reads for `llmfleet status`: each service's own tables, and the router's metrics endpoint."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import aiohttp
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

from llmfleet.status.health import DB_NOT_GIVEN, DB_NOT_MIGRATED, DB_OK, DB_REFUSED, DB_UNREACHABLE, is_unreachable
from services.allocator.adapters import orm as allocator
from services.cost.adapters import orm as cost
from services.monitor.adapters import orm as monitor
from services.scaler.adapters import orm as scaler

T = TypeVar("T")
Rows = list[dict[str, Any]]
GONE = ("released", "failed")
UNDEFINED_TABLE = "42P01"


async def read_service(
    url: str | None,
    service: str,
    read: Callable[[AsyncConnection], Awaitable[T]],
    notes: list[str],
    states: dict[str, str] | None = None,
) -> T | None:
    """Run `read` on a short-lived engine of the service's role; None and a note when it cannot.

    `states[service]` gets how it went (health.DB_*), which `status`'s exit code is made of.
    """
    states = {} if states is None else states
    if not url:
        notes.append(f"{service}: no database URL given")
        states[service] = DB_NOT_GIVEN
        return None
    try:
        engine = create_async_engine(url, poolclass=NullPool, connect_args={"timeout": 5})
    except Exception as exc:  # a malformed URL or unknown driver: the same note as a refusal
        notes.append(f"{service}: database URL unusable ({type(exc).__name__}: {str(exc)[:120]})")
        states[service] = DB_REFUSED
        return None
    try:
        async with engine.connect() as connection:
            result = await read(connection)
        states[service] = DB_OK
        return result
    # A diagnostic must outlive what it diagnoses: any failure of one service's read (refused,
    # wrong password, no schema yet) becomes a note and an empty section, never a crash.
    except Exception as exc:
        orig = getattr(exc, "orig", None) or exc
        if getattr(orig, "sqlstate", None) == UNDEFINED_TABLE:
            notes.append(f"{service}: tables not migrated yet")
            states[service] = DB_NOT_MIGRATED
        else:
            notes.append(f"{service}: database unavailable ({type(orig).__name__}: {str(orig)[:120]})")
            states[service] = DB_UNREACHABLE if is_unreachable(exc) else DB_REFUSED
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


async def read_kafka(bootstrap: str, topics: Iterable[str], timeout_s: float = 5.0) -> dict[str, Any]:
    """Whether the broker answers, how many brokers the cluster has, and which platform topics are missing."""
    from aiokafka.admin import AIOKafkaAdminClient

    from shared.kafka_security import kafka_security_from_env

    # SASL_SSL when LLMFLEET_KAFKA_SECURITY_PROTOCOL says so, as for every other client of the CLI.
    security = kafka_security_from_env().client_options()
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, client_id="llmfleet-status", request_timeout_ms=3000, **security
    )
    try:
        async with asyncio.timeout(timeout_s):
            await admin.start()
            cluster = await admin.describe_cluster()
            present = set(await admin.list_topics())
    except Exception as exc:  # refused, timed out, unresolvable: all mean "does not answer"
        return {"bootstrap": bootstrap, "reachable": False, "error": f"{type(exc).__name__}: {str(exc)[:120]}"}
    finally:
        with contextlib.suppress(Exception):
            await admin.close()
    return {
        "bootstrap": bootstrap,
        "reachable": True,
        "brokers": len(cluster.get("brokers", [])),
        "missing_topics": sorted(set(topics) - present),
    }


async def read_endpoints(base_url: str, timeout_s: float = 3.0) -> dict[str, Any]:
    """A service's /health and /ready (each true when it answers 200), from its metrics port's base URL."""
    result: dict[str, Any] = {"url": base_url}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session:
        for probe in ("health", "ready"):
            try:
                async with session.get(f"{base_url}/{probe}") as response:
                    result[probe] = response.status == 200
                    if response.status != 200:
                        result["detail"] = f"/{probe} answered {response.status}: {(await response.text())[:120]}"
            except Exception as exc:  # refused, timed out, a malformed URL: not healthy, and say why
                result[probe] = False
                result.setdefault("detail", f"/{probe}: {type(exc).__name__}")
    return result
