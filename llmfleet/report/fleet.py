"""The report's fleet sections: scaling, allocations and capacity, alerts, utilisation — from observed events."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from llmfleet.report.stats import mean, rounded
from llmfleet.run_data import ObservedEvent
from shared.events import (
    AlertChanged,
    AlertState,
    AllocationFailed,
    ModelLoaded,
    ModelUnloaded,
    ScalingActionOverdue,
    ScalingActionRequested,
    ServerAllocated,
    ServerMetricsReported,
    ServerReleased,
)

Steps = dict[str, list[tuple[float, int]]]


def scaling_section(events: Sequence[ObservedEvent]) -> dict[str, Any]:
    """The scaler's actions in order, counted by kind, and how many went overdue."""
    actions = []
    overdue: set[str] = set()
    for observed in events:
        e = observed.event
        if isinstance(e, ScalingActionRequested):
            actions.append(
                {
                    "at_s": rounded(observed.at_s, 2),
                    "action_id": e.action_id,
                    "model": e.model_id,
                    "region": e.region,
                    "kind": str(e.kind),
                    "current": e.current_instances,
                    "target": e.target_instances,
                    "rule": e.rule,
                    "policy": e.policy,
                    "priority": e.priority,
                    "reason": e.reason,
                }
            )
        elif isinstance(e, ScalingActionOverdue):
            overdue.add(e.action_id)
    counts = Counter(a["kind"] for a in actions)
    return {"actions": actions, "count": len(actions), "by_kind": dict(sorted(counts.items())), "overdue": len(overdue)}


def _timeline_row(at_s: float, e: Any) -> dict[str, Any]:
    return {
        "at_s": rounded(at_s, 2),
        "type": e.type,
        "server": getattr(e, "server_id", None),
        "model": getattr(e, "model_id", None),
        "region": e.region,
        "gpu_type": getattr(e, "gpu_type", None),
        "instances": getattr(e, "instances", None),
        "cost_per_hour": getattr(e, "cost_per_hour", None),
        "reason": getattr(e, "reason", None),
    }


def capacity_steps(events: Sequence[ObservedEvent]) -> Steps:
    """Instances of each model over time, summed over servers: (at_s, instances from then on)."""
    placed: dict[tuple[str, str], int] = {}  # (server, model) -> instances there now
    steps: Steps = defaultdict(list)
    for observed in events:
        e = observed.event
        if isinstance(e, ModelLoaded):
            # A loaded model without an instance count serves with at least one instance.
            placed[(e.server_id, e.model_id)] = e.instances if e.instances is not None else 1
            touched = {e.model_id}
        elif isinstance(e, ModelUnloaded):
            placed.pop((e.server_id, e.model_id), None)
            touched = {e.model_id}
        elif isinstance(e, ServerReleased):
            touched = {model for server, model in placed if server == e.server_id}
            for model in touched:
                del placed[(e.server_id, model)]
        else:
            continue
        for model in sorted(touched):
            total = sum(n for (_, m), n in placed.items() if m == model)
            steps[model].append((observed.at_s, total))
    return dict(steps)


def allocations_section(events: Sequence[ObservedEvent], notes: list[str]) -> dict[str, Any]:
    """Servers and models placed and removed over time; starts, releases, failures; peaks."""
    kinds = (ServerAllocated, ModelLoaded, ModelUnloaded, ServerReleased, AllocationFailed)
    timeline = [_timeline_row(o.at_s, o.event) for o in events if isinstance(o.event, kinds)]
    running: set[str] = set()
    allocated: set[str] = set()
    peak = 0
    for observed in events:
        e = observed.event
        if isinstance(e, ServerAllocated):
            allocated.add(e.server_id)
            running.add(e.server_id)
        elif isinstance(e, ModelLoaded):
            running.add(e.server_id)  # a server from before the replay counts from its first event
        elif isinstance(e, ServerReleased):
            running.discard(e.server_id)
        peak = max(peak, len(running))
    preexisting = sorted({o.event.server_id for o in events if isinstance(o.event, ModelLoaded)} - allocated)
    if preexisting:
        notes.append(f"Servers loaded with models but not allocated during the run: {', '.join(preexisting)}.")
    if any(isinstance(o.event, ModelLoaded) and o.event.instances is None for o in events):
        notes.append("Some ModelLoaded events carried no instance count; each was counted as one instance.")
    steps = capacity_steps(events)
    return {
        "timeline": timeline,
        "servers_started": sum(1 for o in events if isinstance(o.event, ServerAllocated)),
        "servers_released": sum(1 for o in events if isinstance(o.event, ServerReleased)),
        "allocations_failed": sum(1 for o in events if isinstance(o.event, AllocationFailed)),
        "models_loaded": sum(1 for o in events if isinstance(o.event, ModelLoaded)),
        "models_unloaded": sum(1 for o in events if isinstance(o.event, ModelUnloaded)),
        "peak_servers": peak,
        "peak_instances": {model: max(n for _, n in s) for model, s in sorted(steps.items())},
        "capacity_steps": {model: [[rounded(t, 2), n] for t, n in s] for model, s in sorted(steps.items())},
    }


def alerts_section(events: Sequence[ObservedEvent]) -> dict[str, Any]:
    """Alerts fired and resolved in order, counted, and those still firing at the end."""
    changes = []
    last: dict[str, tuple[float, AlertChanged]] = {}
    for observed in events:
        e = observed.event
        if isinstance(e, AlertChanged):
            changes.append(
                {
                    "at_s": rounded(observed.at_s, 2),
                    "alert_id": e.alert_id,
                    "rule": e.rule,
                    "severity": str(e.severity),
                    "state": str(e.state),
                    "scope": dict(e.scope),
                    "value": e.value,
                    "threshold": e.threshold,
                }
            )
            last[e.alert_id] = (observed.at_s, e)
    still = [
        {"alert_id": a.alert_id, "rule": a.rule, "severity": str(a.severity), "scope": dict(a.scope), "since_s": t}
        for t, a in last.values()
        if a.state == AlertState.FIRING
    ]
    return {
        "changes": changes,
        "fired": sum(1 for c in changes if c["state"] == AlertState.FIRING),
        "resolved": sum(1 for c in changes if c["state"] == AlertState.RESOLVED),
        "still_firing": still,
    }


def utilization_section(events: Sequence[ObservedEvent], notes: list[str]) -> dict[str, Any] | None:
    """Per server mean / max utilisation from the monitor's reports, the fleet mean, and whether derived."""
    reports: dict[str, list[ServerMetricsReported]] = defaultdict(list)
    for observed in events:
        if isinstance(observed.event, ServerMetricsReported):
            reports[observed.event.server_id].append(observed.event)
    if not reports:
        notes.append("No ServerMetricsReported came from the monitor: utilisation is null.")
        return None
    servers = {}
    for server, rs in sorted(reports.items()):
        values = [r.utilization for r in rs]
        servers[server] = {
            "region": rs[-1].region,
            "gpu_type": rs[-1].gpu_type,
            "samples": len(values),
            "mean": rounded(mean(values), 4),
            "max": rounded(max(values), 4),
            "derived": all(r.utilization_derived for r in rs),
        }
    samples = [r.utilization for rs in reports.values() for r in rs]
    derived = [r.utilization_derived for rs in reports.values() for r in rs]
    return {
        "servers": servers,
        "fleet_mean": rounded(mean(samples), 4),  # over every report, each server weighted by its reports
        "derived": "all" if all(derived) else ("none" if not any(derived) else "some"),
    }
