"""Metering per tenant x model: what each finished request adds, and the event a flushed reading becomes (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from services.gateway.domain.budgets import nanos_to_usd
from shared.events import UsageMetered


@dataclass(frozen=True)
class Metered:
    """What requests of one tenant on one model used (one request, or a round's sum)."""

    tenant_id: str
    model_id: str
    prompt_tokens: int
    completion_tokens: int
    cost: int  # nano-dollars at the gateway's price
    requests: int = 1
    failed: int = 0
    budget_refused: int = 0  # requests the tenant's own budget refused (they count nothing else)


def summed(usage: Sequence[Metered]) -> list[Metered]:
    """One row per tenant x model, in lock order (tenant, then model), so concurrent rounds never deadlock."""
    sums: dict[tuple[str, str], Metered] = {}
    for u in usage:
        key = (u.tenant_id, u.model_id)
        if (before := sums.get(key)) is not None:
            u = Metered(
                u.tenant_id,
                u.model_id,
                before.prompt_tokens + u.prompt_tokens,
                before.completion_tokens + u.completion_tokens,
                before.cost + u.cost,
                before.requests + u.requests,
                before.failed + u.failed,
                before.budget_refused + u.budget_refused,
            )
        sums[key] = u
    return [sums[key] for key in sorted(sums)]


@dataclass(frozen=True)
class MeterReading:
    """A tenant x model row taken from the meter, with the tenant's month so far (when it has a budget)."""

    usage: Metered
    tenant: str
    since: datetime
    month_spent: int | None = None  # nano-dollars, in-flight reservations included (what admission compares)
    monthly_budget: int | None = None


def usage_event(reading: MeterReading, now: datetime, source: str) -> UsageMetered:
    """The event one reading is published as."""
    u = reading.usage
    return UsageMetered(
        source=source,
        occurred_at=now,
        tenant_id=u.tenant_id,
        tenant=reading.tenant,
        model_id=u.model_id,
        period_start=min(reading.since, now),
        period_end=now,
        requests=u.requests,
        failed=u.failed,
        budget_refused=u.budget_refused,
        prompt_tokens=u.prompt_tokens,
        completion_tokens=u.completion_tokens,
        spend_usd=nanos_to_usd(u.cost),
        month_spend_usd=None if reading.month_spent is None else nanos_to_usd(max(reading.month_spent, 0)),
        monthly_budget_usd=None if reading.monthly_budget is None else nanos_to_usd(reading.monthly_budget),
    )
