"""Pure assembly of `llmfleet status` sections from rows already read (no I/O)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

Row = Mapping[str, Any]
QUEUE_GAUGE = "llmfleet_router_queue_depth"


def jsonable(value: Any) -> Any:
    """Timestamps as ISO strings, mappings and sequences recursively; everything else as is."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def servers_section(servers: Iterable[Row], placements: Iterable[Row]) -> list[dict[str, Any]]:
    """Live servers with the models placed on them ({model_id: instances}) and each one's plan, by server id."""
    models: dict[str, dict[str, int]] = defaultdict(dict)
    plans: dict[str, dict[str, str]] = defaultdict(dict)
    for p in placements:
        models[p["server_id"]][p["model_id"]] = int(p["instances"])
        if p.get("strategy"):
            plans[p["server_id"]][p["model_id"]] = f"{p['quantisation']} {p['strategy']} on {p['plan_gpus']} GPU"
    fields = ("server_id", "region", "gpu_type", "gpu_count", "pricing_class", "cost_per_hour", "state", "endpoint")
    rows = [
        {f: s[f] for f in fields}
        | {"models": dict(sorted(models[s["server_id"]].items())), "plans": dict(sorted(plans[s["server_id"]].items()))}
        for s in servers
    ]
    return sorted(rows, key=lambda r: r["server_id"])


def instances_by_model(servers: Iterable[Row], placements: Iterable[Row]) -> dict[str, dict[str, int]]:
    """Instances of each model per region, counting only placements on the live servers given."""
    region = {s["server_id"]: s["region"] for s in servers}
    result: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for p in placements:
        if p["server_id"] in region:
            result[p["model_id"]][region[p["server_id"]]] += int(p["instances"])
    return {m: dict(sorted(by_region.items())) for m, by_region in result.items()}


def models_section(
    tiers: Iterable[Row], instances: Mapping[str, Mapping[str, int]], actions: Iterable[Row]
) -> list[dict[str, Any]]:
    """One row per model the scaler tiers or the allocator places: tier, instances, last action."""
    tier = {t["model_id"]: t for t in tiers}
    last = {a["model_id"]: a for a in actions}
    rows = []
    for model_id in sorted(set(tier) | set(instances)):
        t, a = tier.get(model_id), last.get(model_id)
        rows.append(
            {
                "model_id": model_id,
                "tier": t["tier"] if t else None,
                "requests_per_hour": t["requests_per_hour"] if t else None,
                "changed_at": t["changed_at"] if t else None,
                "instances": dict(instances.get(model_id, {})),
                "last_action": _action(a) if a else None,
            }
        )
    return rows


def _action(a: Row) -> dict[str, Any]:
    return {
        "kind": a["kind"],
        "region": a["region"],
        "target": a["target_instances"],
        "status": a["status"],
        "rule": a["rule"],
        "requested_at": a["requested_at"],
    }


def alerts_section(states: Iterable[Row]) -> list[dict[str, Any]]:
    """Firing alerts (the caller selects them), by rule then scope."""
    fields = ("rule", "severity", "scope", "value", "fired_at")
    rows = sorted(states, key=lambda s: (s["rule"], s["scope_key"]))
    return [{f: s[f] for f in fields} for s in rows]


def cost_section(report: Row | None, open_count: int, open_savings: float | None) -> dict[str, Any]:
    """The latest cost report's figures and the open recommendations' count and savings."""
    body = (report or {}).get("body") or {}
    figures = body.get("report", {}) if isinstance(body, Mapping) else {}
    return {
        "report_id": report["report_id"] if report else None,
        "created_at": report["created_at"] if report else None,
        "total_per_hour": report["total_per_hour"] if report else None,
        "by_region_per_hour": dict(sorted(figures.get("by_region_per_hour", {}).items())),
        "by_model_per_hour": dict(sorted(figures.get("by_model_per_hour", {}).items())),
        "open_recommendations": open_count,
        "open_savings_per_month": round(open_savings or 0.0, 2),
    }


def queues_section(metrics_text: str) -> list[dict[str, Any]]:
    """Requests waiting or in flight per model, from the router's Prometheus exposition."""
    depth: dict[str, float] = {}
    for family in text_string_to_metric_families(metrics_text):
        if family.name != QUEUE_GAUGE:
            continue
        for sample in family.samples:
            depth[sample.labels.get("model", "")] = sample.value
    return [{"model_id": m, "depth": int(v)} for m, v in sorted(depth.items())]
