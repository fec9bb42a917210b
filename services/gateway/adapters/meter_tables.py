"""The usage meter in SQL: raised by the ledger's rounds, read and emptied by the meter job."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.gateway.domain.budgets import NANOS_PER_USD, month_of
from services.gateway.domain.metering import Metered, MeterReading, summed

# One upsert for any batch; rows sorted, so concurrent rounds lock them in one order. A round that
# admits runs it inside the admission statement (limits_tables.ADMIT: no round trip of its own).
UPSERT = (
    "INSERT INTO usage_meter AS m (tenant_id, model_id, requests, failed, prompt_tokens, completion_tokens, "
    "cost_nanos, budget_refused, since) SELECT t, mo, r, f, p, c, n, b, CAST(:m_now AS timestamptz) "
    "FROM unnest(CAST(:m_t AS text[]), CAST(:m_mo AS text[]), CAST(:m_r AS int[]), CAST(:m_f AS int[]), "
    "CAST(:m_p AS bigint[]), CAST(:m_c AS bigint[]), CAST(:m_n AS bigint[]), CAST(:m_b AS int[])) "
    "AS u(t, mo, r, f, p, c, n, b) ORDER BY 1, 2 "
    "ON CONFLICT (tenant_id, model_id) DO UPDATE SET requests = m.requests + excluded.requests, "
    "failed = m.failed + excluded.failed, budget_refused = m.budget_refused + excluded.budget_refused, "
    "prompt_tokens = m.prompt_tokens + excluded.prompt_tokens, "
    "completion_tokens = m.completion_tokens + excluded.completion_tokens, "
    "cost_nanos = m.cost_nanos + excluded.cost_nanos"
)
# Alone (a round that only settles): with the ledger's asynchronous commit (limits_tables.ASYNC_COMMIT).
ADD = text(UPSERT + " RETURNING (SELECT set_config('synchronous_commit', 'off', true))")

# Rows taken by one replica's flush are locked until it commits: another replica's flush waits,
# then finds them gone, so no period is published twice.
TAKE = text(
    "WITH gone AS (DELETE FROM usage_meter RETURNING *) "
    "SELECT g.tenant_id, g.model_id, g.requests, g.failed, g.prompt_tokens, g.completion_tokens, g.cost_nanos, "
    "g.budget_refused, "
    "g.since, coalesce(t.name, g.tenant_id) AS name, t.monthly_budget_usd, b.spent_nanos "
    "FROM gone g LEFT JOIN tenant t ON t.tenant_id = g.tenant_id "
    "LEFT JOIN budget_month b ON b.subject = 'tenant:' || g.tenant_id AND b.month_start = :month "
    "ORDER BY g.tenant_id, g.model_id"
)


def meter_params(usage: Sequence[Metered], now: datetime) -> dict[str, Any]:
    """The round's usage summed per tenant x model, as `UPSERT`'s parameters (empty arrays: nothing)."""
    rows = summed(usage)
    return {
        "m_now": now,
        "m_t": [u.tenant_id for u in rows],
        "m_mo": [u.model_id for u in rows],
        "m_r": [u.requests for u in rows],
        "m_f": [u.failed for u in rows],
        "m_p": [u.prompt_tokens for u in rows],
        "m_c": [u.completion_tokens for u in rows],
        "m_n": [u.cost for u in rows],
        "m_b": [u.budget_refused for u in rows],
    }


async def add(session: AsyncSession, usage: Sequence[Metered], now: datetime) -> None:
    """Add a round's usage, summed per tenant x model."""
    if usage:
        await session.execute(ADD, meter_params(usage, now))


async def take(session: AsyncSession, now: datetime) -> list[MeterReading]:
    """Empty the meter; each row with its tenant's name, budget and spend this month."""
    readings = []
    for row in await session.execute(TAKE, {"month": month_of(now)}):
        usage = Metered(
            row.tenant_id,
            row.model_id,
            row.prompt_tokens,
            row.completion_tokens,
            row.cost_nanos,
            row.requests,
            row.failed,
            row.budget_refused,
        )
        budget = None if row.monthly_budget_usd is None else int(row.monthly_budget_usd * NANOS_PER_USD)
        spent = None if budget is None else (row.spent_nanos or 0)
        readings.append(MeterReading(usage, row.name, row.since, spent, budget))
    return readings
