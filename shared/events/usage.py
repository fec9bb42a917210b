"""What the gateway's tenants used: tokens and spend per tenant x model, for chargeback and budget alerts."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from shared.events.envelope import Event


class UsageMetered(Event):
    """One tenant's use of one model over a metering period (a gateway replica's aggregate); keyed by tenant id.

    `spend_usd` is priced by the gateway (the price its budgets count); `month_spend_usd` and
    `monthly_budget_usd` are the tenant's enforced month-to-date figure (in-flight reservations
    included) and budget when the period was flushed, so a reader can judge the budget without
    asking the gateway. `budget_refused` tells a budget that is used up from one merely close to
    it: a request is refused when its worst case would pass the budget, so a refused tenant's
    spend can stay just under 100%.
    """

    type: Literal["usage_metered"] = "usage_metered"
    tenant_id: str
    tenant: str = Field(description="the tenant's name when the period was flushed")
    model_id: str
    period_start: datetime
    period_end: datetime
    requests: int = Field(ge=0)
    failed: int = Field(default=0, ge=0, description="requests that got no answer or an error (they count too)")
    budget_refused: int = Field(
        default=0, ge=0, description="requests refused because the tenant's monthly budget could not cover them"
    )
    prompt_tokens: int = Field(ge=0)
    completion_tokens: int = Field(ge=0)
    spend_usd: float = Field(ge=0.0)
    month_spend_usd: float | None = Field(default=None, ge=0.0)
    monthly_budget_usd: float | None = Field(default=None, ge=0.0)
