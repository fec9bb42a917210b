"""Monthly budgets: what a request costs in money, which month it counts in, and when the next one starts (pure).

Money is counted in whole nano-dollars (1e-9 USD), so every sum and comparison in SQL and here is
exact: a price is held as nano-dollars per token, and a request costs tokens x that price.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

NANOS_PER_USD = 1_000_000_000


def usd_to_nanos(usd: float) -> int:
    """Dollars as whole nano-dollars (rounded to the nearest)."""
    return round(usd * NANOS_PER_USD)


def nanos_to_usd(nanos: int) -> float:
    """Nano-dollars as dollars."""
    return nanos / NANOS_PER_USD


def shown_usd(usd: float) -> str:
    """Dollars to the cent, and an amount under a cent to its last significant digit (never shown as $0.00)."""
    return f"${usd:,.2f}" if usd >= 0.01 or usd == 0 else "$" + f"{usd:.9f}".rstrip("0")


@dataclass(frozen=True)
class Prices:
    """Nano-dollars per token, per model; `default` for a model not listed."""

    default: int
    per_model: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def per_1k_tokens(cls, default_usd: float, per_model_usd: Mapping[str, float]) -> Prices:
        """From the settings' dollars per 1,000 tokens (a price per token of 1e-9 USD or more is exact)."""
        to_nanos = 1_000_000  # USD per 1k tokens -> nano-dollars per token
        return cls(round(default_usd * to_nanos), {m: round(p * to_nanos) for m, p in per_model_usd.items()})

    def cost(self, model: str, tokens: int) -> int:
        """What `tokens` of `model` cost, in nano-dollars."""
        return tokens * self.per_model.get(model, self.default)


def month_of(moment: datetime) -> datetime:
    """The first instant of the (UTC) month `moment` falls in: the budget period."""
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month(moment: datetime) -> datetime:
    """The first instant of the month after `moment`'s."""
    start = month_of(moment)
    return start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)


def seconds_to_next_month(now: datetime) -> int:
    """Whole seconds until the budget period resets (at least 1): an over-budget client's Retry-After."""
    return max(1, math.ceil((next_month(now) - now).total_seconds()))
