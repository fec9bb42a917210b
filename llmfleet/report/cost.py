"""The report's cost sections: the cost service's last report, a measured $/1k tokens, its recommendations."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llmfleet.report.stats import rounded
from llmfleet.run_data import ObservedEvent, RequestRecord
from shared.events import CostRecommended, CostReported, ServerAllocated, ServerReleased

MEASURED_LABEL = "at wall-clock rates, compressed trace"


def server_spend(events: Sequence[ObservedEvent], end_s: float) -> tuple[float, float]:
    """Dollars and server-hours of the servers allocated in the run, each priced from allocation to release or end."""
    open_since: dict[str, tuple[float, float]] = {}  # server -> (since, $/h)
    dollars = hours = 0.0
    for observed in events:
        e = observed.event
        if isinstance(e, ServerAllocated) and e.server_id not in open_since:
            open_since[e.server_id] = (max(0.0, observed.at_s), e.cost_per_hour)
        elif isinstance(e, ServerReleased) and e.server_id in open_since:
            since, rate = open_since.pop(e.server_id)
            span_h = max(0.0, min(observed.at_s, end_s) - since) / 3600.0
            dollars, hours = dollars + rate * span_h, hours + span_h
    for since, rate in open_since.values():
        span_h = max(0.0, end_s - since) / 3600.0
        dollars, hours = dollars + rate * span_h, hours + span_h
    return dollars, hours


def _last_report(events: Sequence[ObservedEvent]) -> dict[str, Any] | None:
    reports = [o for o in events if isinstance(o.event, CostReported)]
    if not reports:
        return None
    observed = reports[-1]
    e = observed.event
    assert isinstance(e, CostReported)
    return {
        "at_s": rounded(observed.at_s, 2),
        "total_per_hour": rounded(e.total_per_hour, 4),
        "by_model_per_hour": {k: rounded(v, 4) for k, v in sorted(e.by_model_per_hour.items())},
        "per_1k_tokens": {k: rounded(v, 6) for k, v in sorted(e.per_1k_tokens.items())},
        "servers": e.servers,
        "gpus": e.gpus,
        "reports_seen": len(reports),
    }


def cost_section(
    records: Sequence[RequestRecord], events: Sequence[ObservedEvent], end_s: float, notes: list[str]
) -> dict[str, Any]:
    """The cost service's last figures, and the fleet's spend over the run per 1,000 tokens served."""
    reported = _last_report(events)
    if reported is None:
        notes.append("No CostReported came from the cost service: its figures are null.")
    dollars, hours = server_spend(events, end_s)
    ok = [r for r in records if r.status == "ok"]
    tokens = sum(r.tokens_out + r.prompt_tokens for r in ok)
    per_1k = dollars / (tokens / 1000.0) if tokens else None
    if not any(isinstance(o.event, ServerAllocated) for o in events):
        notes.append("No server was allocated during the run: the measured spend covers no server.")
    if per_1k is None:
        notes.append("No tokens were served: the measured cost per 1,000 tokens is null.")
    return {
        "reported": reported,
        "measured": {
            "label": MEASURED_LABEL,
            "wall_s": rounded(end_s, 2),
            "server_hours": rounded(hours, 5),
            "dollars": rounded(dollars, 6),
            "mean_per_hour": rounded(dollars / (end_s / 3600.0), 4) if end_s > 0 else None,
            "tokens": tokens,
            "per_1k_tokens": rounded(per_1k, 6),
        },
    }


def recommendations_section(events: Sequence[ObservedEvent]) -> dict[str, Any]:
    """The cost service's standing recommendations and their total savings.

    The service re-evaluates every cycle; a changed recommendation about the same thing (its kind,
    pool or model) gets a new id and supersedes the earlier one, so only the latest of each counts.
    """
    latest: dict[tuple[str | None, ...], CostRecommended] = {}
    seen: set[str] = set()
    for observed in events:
        if isinstance(observed.event, CostRecommended):
            r = observed.event
            seen.add(r.recommendation_id)
            latest[(r.kind, r.region, r.gpu_type, r.model_id)] = r
    items: list[dict[str, Any]] = [
        {
            "recommendation_id": r.recommendation_id,
            "kind": r.kind,
            "summary": r.summary,
            "savings_per_month": rounded(r.savings_per_month, 2),
            "region": r.region,
            "gpu_type": r.gpu_type,
            "model": r.model_id,
        }
        for r in latest.values()
    ]
    items.sort(key=lambda item: -(item["savings_per_month"] or 0.0))
    total = sum(r.savings_per_month for r in latest.values())
    return {
        "items": items,
        "count": len(items),
        "superseded": len(seen) - len(latest),
        "total_savings_per_month": rounded(total, 2),
    }
