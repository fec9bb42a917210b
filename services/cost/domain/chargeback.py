"""Chargeback: what a tenant's metered tokens cost the fleet, at the cost service's cost per 1,000 tokens (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime


@dataclass(frozen=True)
class UsageCost:
    """One metered period priced: the day it counts in, its cost, and the tokens no cost was known for."""

    day: date
    cost_usd: float
    unpriced_tokens: int


def price_usage(model_id: str, tokens: int, period_end: datetime, per_1k_tokens: Mapping[str, float]) -> UsageCost:
    """Tokens x the model's cost per token; a model the latest report did not price costs 0 and is counted unpriced.

    The period counts in the UTC day it ended: the gateway flushes every minute, so at most a
    minute's usage lands on the next day.
    """
    rate = per_1k_tokens.get(model_id)
    if rate is None:
        return UsageCost(period_end.date(), 0.0, tokens)
    return UsageCost(period_end.date(), tokens * rate / 1000, 0)
