"""The authoritative usage count in SQL: admit in one statement, settle and reap in batches."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.gateway.adapters.meter_tables import UPSERT as METER_UPSERT
from services.gateway.adapters.meter_tables import meter_params
from services.gateway.adapters.orm import budget_month, inflight, usage_window
from services.gateway.domain.budgets import month_of
from services.gateway.domain.limits import (
    Claim,
    Refusal,
    Settlement,
    Usage,
    fallback_refusal,
    fits_fresh,
    holds,
    raises,
    refusal_for,
    spends,
)
from services.gateway.domain.metering import Metered

NO_LIMIT = 2**62  # "no limit" inside a comparison

# The ledger's transactions commit without waiting for the WAL flush (this transaction only; keys
# and tenants stay synchronous): a database crash may forget the last fraction of a second of
# counts, which makes that minute's limits a little lenient; waiting would add a disk flush to
# every request. Evaluated inside each ledger statement, so it costs no round trip of its own.
ASYNC_COMMIT = "(SELECT set_config('synchronous_commit', 'off', true))"

# One statement, the same text for any batch (one prepared statement): each subject's minute row,
# in-flight row and (budgeted subjects) month row raised by the batch's sum, only where the sum
# stays under the limit the row is given; the leases inserted. Rows come sorted, so every writer
# locks them in one order: minute rows, in-flight rows, month rows. The month row takes the
# request's worst-case cost (prompt + max_tokens at the model's price), so requests admitted
# concurrently on any number of replicas can never spend past the budget together.
ADMIT = text(
    f"""
WITH w AS (
  INSERT INTO usage_window AS u (subject, window_start, requests, tokens, rpm_limit, tpm_limit)
  SELECT * FROM unnest(CAST(:ws AS text[]), CAST(:ww AS timestamptz[]), CAST(:wn AS int[]),
                       CAST(:wt AS bigint[]), CAST(:wr AS bigint[]), CAST(:wl AS bigint[])) ORDER BY 1, 2
  ON CONFLICT (subject, window_start) DO UPDATE
  SET requests = u.requests + excluded.requests, tokens = u.tokens + excluded.tokens,
      rpm_limit = excluded.rpm_limit, tpm_limit = excluded.tpm_limit
  WHERE u.requests + excluded.requests <= excluded.rpm_limit AND u.tokens + excluded.tokens <= excluded.tpm_limit
  RETURNING 1),
c AS (
  INSERT INTO inflight AS f (subject, requests, concurrency_limit)
  SELECT * FROM unnest(CAST(:cs AS text[]), CAST(:cn AS int[]), CAST(:cl AS bigint[])) ORDER BY 1
  ON CONFLICT (subject) DO UPDATE
  SET requests = f.requests + excluded.requests, concurrency_limit = excluded.concurrency_limit
  WHERE f.requests + excluded.requests <= excluded.concurrency_limit
  RETURNING 1),
b AS (
  INSERT INTO budget_month AS m (subject, month_start, spent_nanos, budget_nanos)
  SELECT * FROM unnest(CAST(:bs AS text[]), CAST(:bm AS timestamptz[]), CAST(:bc AS bigint[]),
                       CAST(:bb AS bigint[])) ORDER BY 1, 2
  ON CONFLICT (subject, month_start) DO UPDATE
  SET spent_nanos = m.spent_nanos + excluded.spent_nanos, budget_nanos = excluded.budget_nanos
  WHERE m.spent_nanos + excluded.spent_nanos <= excluded.budget_nanos
  RETURNING 1),
l AS (
  INSERT INTO lease (request_id, subject, expires_at)
  SELECT * FROM unnest(CAST(:lr AS text[]), CAST(:ls AS text[]), CAST(:lu AS timestamptz[]))
  RETURNING 1),
mt AS ({METER_UPSERT} RETURNING 1)
SELECT (SELECT count(*) FROM w), (SELECT count(*) FROM c), (SELECT count(*) FROM b), (SELECT count(*) FROM l),
       {ASYNC_COMMIT}
"""  # noqa: S608 - constants only
)


def _or_none(value: int | None) -> int:
    return NO_LIMIT if value is None else value


def admission_params(claims: Sequence[Claim]) -> dict[str, Any]:
    """The batch's rows for `ADMIT`: summed per subject and minute, in lock order."""
    rows, held, spent = raises(claims), holds(claims), spends(claims)
    leased = [(c.request_id, s.name, c.lease_until) for c in claims for s in c.subjects if s.limits.concurrency]
    return {
        "ws": [r.subject.name for r in rows],
        "ww": [r.window for r in rows],
        "wn": [r.requests for r in rows],
        "wt": [r.tokens for r in rows],
        "wr": [_or_none(r.subject.limits.rpm) for r in rows],
        "wl": [_or_none(r.subject.limits.tpm) for r in rows],
        "cs": [s.name for s, _ in held],
        "cn": [n for _, n in held],
        "cl": [_or_none(s.limits.concurrency) for s, _ in held],
        "bs": [s.name for s, _, _ in spent],
        "bm": [month for _, month, _ in spent],
        "bc": [cost for _, _, cost in spent],
        "bb": [_or_none(s.limits.monthly_budget) for s, _, _ in spent],
        "lr": [rid for rid, _, _ in leased],
        "ls": [name for _, name, _ in leased],
        "lu": [until for _, _, until in leased],
    }


async def admit(
    session: AsyncSession, claims: Sequence[Claim], metered: Sequence[Metered] = (), now: datetime | None = None
) -> bool:
    """Raise the counts of every claim at once, and meter `metered`; False when a limit refused.

    On False the caller must roll back (and meter again in its next transaction).
    """
    if not fits_fresh(raises(claims), holds(claims), spends(claims)):
        return False  # a minute's (month's) first row is inserted unchecked: the batch must fit on its own
    params = admission_params(claims) | meter_params(metered, now or datetime.now(UTC))
    admitted, counted, budgeted, _leased, _ = (await session.execute(ADMIT, params)).one()
    return bool(admitted == len(params["ws"]) and counted == len(params["cs"]) and budgeted == len(params["bs"]))


async def explain(session: AsyncSession, claim: Claim, now: datetime) -> Refusal:
    """Which limit refuses `claim`, from the counts as they stand (after the refused claim rolled back)."""
    names = [s.name for s in claim.subjects]
    windows = await session.execute(
        select(usage_window.c.subject, usage_window.c.requests, usage_window.c.tokens).where(
            usage_window.c.subject.in_(names), usage_window.c.window_start == claim.window
        )
    )
    usage = {row.subject: Usage(row.requests, row.tokens) for row in windows}
    rows = await session.execute(select(inflight.c.subject, inflight.c.requests).where(inflight.c.subject.in_(names)))
    busy = {row.subject: row.requests for row in rows}
    months = await session.execute(
        select(budget_month.c.subject, budget_month.c.spent_nanos).where(
            budget_month.c.subject.in_(names), budget_month.c.month_start == claim.month
        )
    )
    spent = {row.subject: row.spent_nanos for row in months}
    for s in claim.subjects:
        counts = (usage.get(s.name, Usage()), busy.get(s.name, 0))
        if refusal := refusal_for(s, *counts, claim.tokens, now, spent.get(s.name, 0), claim.cost):
            return refusal
    return fallback_refusal(claim)


async def settle(session: AsyncSession, settlements: Sequence[Settlement]) -> None:
    """Replace the reservations by what was used, and end the requests' leases, in one transaction.

    Rows are locked in the order admission locks them (minute rows by subject and window, then
    in-flight rows by subject, then month rows), so a settlement and an admission never wait on
    each other in a cycle.
    """
    deltas: dict[tuple[str, datetime], int] = defaultdict(int)
    for s in settlements:
        for name in s.subjects:
            deltas[(name, s.window)] += s.used - s.reserved
    changed = sorted((k, d) for k, d in deltas.items() if d)
    if changed:
        await session.execute(
            text(
                "INSERT INTO usage_window AS u (subject, window_start, requests, tokens) "
                "SELECT d.subject, d.ws, 0, d.delta FROM unnest(CAST(:s AS text[]), CAST(:w AS timestamptz[]), "
                "CAST(:d AS bigint[])) AS d(subject, ws, delta) ORDER BY d.subject, d.ws "
                "ON CONFLICT (subject, window_start) DO UPDATE SET tokens = u.tokens + excluded.tokens"
            ),
            {"s": [k[0] for k, _ in changed], "w": [k[1] for k, _ in changed], "d": [d for _, d in changed]},
        )
    await _end_leases(session, "request_id = ANY(CAST(:ids AS text[]))", {"ids": [s.request_id for s in settlements]})
    spent: dict[tuple[str, datetime], int] = defaultdict(int)
    for s in settlements:
        for name in s.budgeted:
            spent[(name, month_of(s.window))] += s.used_cost - s.reserved_cost
    moved = sorted((k, d) for k, d in spent.items() if d)
    if moved:  # the reservation's worst case replaced by the real cost (never refused: it can only fall)
        await session.execute(
            text(
                "UPDATE budget_month AS m SET spent_nanos = m.spent_nanos + d.delta FROM (SELECT * FROM "
                "unnest(CAST(:s AS text[]), CAST(:m AS timestamptz[]), CAST(:d AS bigint[])) ORDER BY 1, 2) "
                "AS d(subject, ms, delta) WHERE m.subject = d.subject AND m.month_start = d.ms"
            ),
            {"s": [k[0] for k, _ in moved], "m": [k[1] for k, _ in moved], "d": [d for _, d in moved]},
        )


async def reap(session: AsyncSession, now: datetime) -> int:
    """Release the leases of requests whose replica never settled them (it died); how many."""
    return await _end_leases(session, "expires_at < :now", {"now": now})


async def _end_leases(session: AsyncSession, where: str, params: dict[str, Any]) -> int:
    """Delete the matching leases and lower each subject's in-flight count by as many (rows in subject order)."""
    result = await session.execute(
        text(
            f"WITH gone AS (DELETE FROM lease WHERE {where} RETURNING subject), "  # noqa: S608 - fixed clauses
            "n AS (SELECT subject, count(*) AS c FROM gone GROUP BY subject), "
            "lowered AS (INSERT INTO inflight AS f (subject, requests) SELECT subject, -c FROM n ORDER BY subject "
            "ON CONFLICT (subject) DO UPDATE SET requests = greatest(f.requests + excluded.requests, 0) RETURNING 1) "
            f"SELECT coalesce(sum(c), 0), {ASYNC_COMMIT} FROM n"
        ),
        params,
    )
    return int(result.one()[0])


async def prune_usage(session: AsyncSession, before: datetime) -> None:
    """Forget minute windows older than `before` (retention also does this, in bounded batches)."""
    await session.execute(delete(usage_window).where(usage_window.c.window_start < before))
