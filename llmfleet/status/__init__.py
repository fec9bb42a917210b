"""`llmfleet status`: servers, models and tiers, queues, firing alerts and cost, from the services' own data.

Each service's tables are read with its own role, on a short-lived engine; the router's queues come
from its Prometheus endpoint. Anything unavailable (a schema not migrated yet, an endpoint that does
not answer) leaves its section empty and adds a note: status never fails on a fresh platform.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from llmfleet.status.model import (
    alerts_section,
    cost_section,
    instances_by_model,
    jsonable,
    models_section,
    queues_section,
    servers_section,
)
from llmfleet.status.read import read_allocator, read_cost, read_metrics, read_monitor, read_scaler, read_service
from llmfleet.status.render import render_platform_status

__all__ = ["platform_status", "render_platform_status"]


async def platform_status(database_url: Callable[[str], str], router_metrics_url: str | None = None) -> dict[str, Any]:
    """The platform's state as a JSON-able dict: servers, models, queues, alerts, cost, notes."""
    notes: list[str] = []
    allocator, scaler, firing, cost, metrics = await asyncio.gather(
        read_service(database_url("allocator"), "allocator", read_allocator, notes),
        read_service(database_url("scaler"), "scaler", read_scaler, notes),
        read_service(database_url("monitor"), "monitor", read_monitor, notes),
        read_service(database_url("cost"), "cost", read_cost, notes),
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
    }
    result: dict[str, Any] = jsonable(status)
    return result


async def _metrics(url: str | None, notes: list[str]) -> str | None:
    if not url:
        notes.append("router queues unknown: no router metrics URL given")
        return None
    return await read_metrics(url, notes)
