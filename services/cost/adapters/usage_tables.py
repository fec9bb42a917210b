"""The chargeback table: metered usage per tenant x model x day (part of the SQL repository)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.cost.adapters.orm import tenant_usage
from services.cost.domain.chargeback import UsageCost
from shared.events import UsageMetered

# Columns a new period adds to its day's row.
ADDED = ("requests", "failed", "prompt_tokens", "completion_tokens", "billed_usd", "cost_usd", "unpriced_tokens")


class UsageTables:
    """SQL of the gateway's metered usage (the caller owns the transaction)."""

    _session: AsyncSession

    async def add_usage(self, event: UsageMetered, priced: UsageCost, now: datetime) -> None:
        """Add one metered period to its tenant x model x day row."""
        row = {
            "tenant_id": event.tenant_id,
            "model_id": event.model_id,
            "day": priced.day,
            "tenant": event.tenant,
            "requests": event.requests,
            "failed": event.failed,
            "prompt_tokens": event.prompt_tokens,
            "completion_tokens": event.completion_tokens,
            "billed_usd": event.spend_usd,
            "cost_usd": priced.cost_usd,
            "unpriced_tokens": priced.unpriced_tokens,
            "updated_at": now,
        }
        statement = insert(tenant_usage).values(row)
        t, new = tenant_usage.c, statement.excluded
        added = [*ADDED]
        await self._session.execute(
            statement.on_conflict_do_update(
                index_elements=[t.tenant_id, t.model_id, t.day],
                set_={n: t[n] + new[n] for n in added} | {"tenant": new.tenant, "updated_at": new.updated_at},
            )
        )

    async def chargeback(self, since: date, tenant: str | None = None) -> list[dict[str, Any]]:
        """Rows from `since` on (of one tenant, by name), by day, tenant and model."""
        query = select(tenant_usage).where(tenant_usage.c.day >= since)
        if tenant:
            query = query.where(tenant_usage.c.tenant == tenant)
        query = query.order_by(tenant_usage.c.day, tenant_usage.c.tenant, tenant_usage.c.model_id)
        return [dict(row._mapping) for row in await self._session.execute(query)]
