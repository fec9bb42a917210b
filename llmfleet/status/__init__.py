"""`llmfleet status`: servers, models and tiers, queues, firing alerts and cost, from the services' own data.

Each service's tables are read with its own role, on a short-lived engine; the router's queues come
from its Prometheus endpoint. Anything unavailable (a schema not migrated yet, an endpoint that does
not answer) leaves its section empty and adds a note: status never crashes on a fresh platform.
`inspect` adds the health checks (the broker, each service's /health and /ready) whose verdict is
the command's exit code (see health.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from llmfleet.status.health import verdict
from llmfleet.status.model import (
    alerts_section,
    cost_section,
    instances_by_model,
    jsonable,
    models_section,
    queues_section,
    servers_section,
)
from llmfleet.status.read import (
    read_allocator,
    read_cost,
    read_endpoints,
    read_kafka,
    read_metrics,
    read_monitor,
    read_scaler,
    read_service,
)
from llmfleet.status.render import render_health, render_platform_status
from llmfleet.target import SERVICES, Target
from shared.events import ALL_TOPICS

__all__ = ["inspect", "platform_status", "render_health", "render_platform_status"]


async def platform_status(
    database_url: Callable[[str], str | None], router_metrics_url: str | None = None
) -> dict[str, Any]:
    """The platform's state as a JSON-able dict: servers, models, queues, alerts, cost, notes.

    `databases` says per service read how its database answered (health.DB_*).
    """
    notes: list[str] = []
    databases: dict[str, str] = {}
    allocator, scaler, firing, cost, metrics = await asyncio.gather(
        read_service(database_url("allocator"), "allocator", read_allocator, notes, databases),
        read_service(database_url("scaler"), "scaler", read_scaler, notes, databases),
        read_service(database_url("monitor"), "monitor", read_monitor, notes, databases),
        read_service(database_url("cost"), "cost", read_cost, notes, databases),
        _metrics(router_metrics_url, notes),
    )
    servers, placements = allocator or ([], [])
    tiers, actions = scaler or ([], [])
    queues: list[dict[str, Any]] = []
    if metrics is not None:
        try:
            queues = queues_section(metrics)
        except ValueError as exc:  # not Prometheus text (e.g. a wrong URL that answers HTML)
            notes.append(f"router metrics at {router_metrics_url} are not Prometheus text ({exc})")
    status = {
        "servers": servers_section(servers, placements),
        "models": models_section(tiers, instances_by_model(servers, placements), actions),
        "queues": queues,
        "alerts": alerts_section(firing or []),
        "cost": cost_section(*(cost or (None, 0, None))),
        "notes": sorted(notes),
        "databases": dict(sorted(databases.items())),
    }
    result: dict[str, Any] = jsonable(status)
    return result


class Probes(Protocol):
    """What `inspect` asks of the world; the live one below, a fake in the unit tests."""

    async def kafka(self, bootstrap: str, topics: Iterable[str]) -> dict[str, Any]:
        """{"bootstrap", "reachable", "brokers", "missing_topics"} or {"bootstrap", "reachable": False, "error"}."""
        ...

    async def endpoints(self, base_url: str) -> dict[str, Any]:
        """{"url", "health", "ready", "detail"?} of a service's metrics port."""
        ...

    async def platform(self, database_url: Callable[[str], str | None], router_metrics: str | None) -> dict[str, Any]:
        """`platform_status`'s dict, with "databases" (health.DB_* per service read)."""
        ...


class LiveProbes:
    """The real broker, databases and HTTP endpoints."""

    async def kafka(self, bootstrap: str, topics: Iterable[str]) -> dict[str, Any]:
        return await read_kafka(bootstrap, topics)

    async def endpoints(self, base_url: str) -> dict[str, Any]:
        return await read_endpoints(base_url)

    async def platform(self, database_url: Callable[[str], str | None], router_metrics: str | None) -> dict[str, Any]:
        return await platform_status(database_url, router_metrics)


# The probes `llmfleet status` uses; the CLI tests put a fake here.
PROBES: Probes = LiveProbes()


async def inspect(target: Target, probes: Probes | None = None) -> dict[str, Any]:
    """Everything `llmfleet status` shows about `target`: its health (with the exit code) and its state."""
    probes = probes or PROBES
    bootstrap = target.kafka_bootstrap()
    router = target.metrics_base("router")
    kafka, platform, services = await asyncio.gather(
        probes.kafka(bootstrap, [t.name for t in ALL_TOPICS]) if bootstrap else _none(),
        probes.platform(target.database_url, f"{router}/metrics" if router else None),
        _services(target, probes),
    )
    code, reasons = verdict(kafka, platform["databases"], services)
    health = {"exit_code": code, "reasons": reasons, "kafka": kafka, "services": services}
    return {"target": target.describe(), "health": health, "platform": platform}


async def _none() -> None:
    return None


async def _services(target: Target, probes: Probes) -> dict[str, dict[str, Any]]:
    """/health and /ready of each service the target has an endpoint for (local: each one recorded)."""
    if target.local:
        from deploy.local import services

        recorded = services.status()
        stopped = {name: {"running": False} for name, info in recorded.items() if not info.get("running")}
        running = [name for name in recorded if name not in stopped]
    else:
        stopped, running = {}, list(SERVICES)
    bases = {name: base for name in running if (base := target.metrics_base(name))}
    checked = await asyncio.gather(*(probes.endpoints(base) for base in bases.values()))
    return dict(sorted({**stopped, **dict(zip(bases, checked, strict=True))}.items()))


async def _metrics(url: str | None, notes: list[str]) -> str | None:
    if not url:
        notes.append("router queues unknown: no router metrics URL given")
        return None
    return await read_metrics(url, notes)
