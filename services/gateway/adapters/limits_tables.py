"""The authoritative usage count in SQL: admit in one statement, settle and reap in batches."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.gateway.adapters.orm import inflight, usage_window
from services.gateway.domain.limits import Claim, Refusal, Settlement, Usage, fallback_refusal, refusal_for

NO_LIMIT = 2**62  # "no limit" inside a comparison


def admission_sql(claim: Claim) -> tuple[str, dict[str, Any]]:
    """One statement that raises every subject's minute and in-flight counts, each only under its limit.

    It returns how many subjects each part admitted; fewer than asked means a limit refused, and
    the caller rolls the transaction back (so no subject keeps a partial count). The row locks of
    the upserts serialise concurrent admissions of one subject across every replica. Only
    placeholders are formatted in; every value is a bound parameter.
    """
    subjects = claim.subjects
    names = [s.name for s in subjects]
    params: dict[str, Any] = {"w": claim.window, "n": claim.tokens, "rid": claim.request_id, "until": claim.lease_until}
    params |= {f"sub{i}": name for i, name in enumerate(names)}
    rows = ", ".join(f"(:sub{i}, :w, 1, :n)" for i in range(len(names)))
    rpm = _limit("u.subject", "rpm", names, [s.limits.rpm for s in subjects], params)
    tpm = _limit("u.subject", "tpm", names, [s.limits.tpm for s in subjects], params)
    sql = [
        "WITH w AS (INSERT INTO usage_window AS u (subject, window_start, requests, tokens)",
        f"VALUES {rows} ON CONFLICT (subject, window_start) DO UPDATE",
        "SET requests = u.requests + 1, tokens = u.tokens + excluded.tokens",
        f"WHERE u.requests + 1 <= {rpm} AND u.tokens + excluded.tokens <= {tpm} RETURNING subject)",
    ]
    counted = [s for s in subjects if s.limits.concurrency is not None]
    if not counted:
        return "\n".join([*sql, "SELECT (SELECT count(*) FROM w), 0, 0"]), params
    cnames = [s.name for s in counted]
    params |= {f"c{i}": name for i, name in enumerate(cnames)}
    crows = ", ".join(f"(:c{i}, 1)" for i in range(len(cnames)))
    lrows = ", ".join(f"(:rid, :c{i}, :until)" for i in range(len(cnames)))
    limit = _limit("f.subject", "conc", cnames, [s.limits.concurrency for s in counted], params)
    sql += [
        f", c AS (INSERT INTO inflight AS f (subject, requests) VALUES {crows}",  # noqa: S608 - placeholders
        f"ON CONFLICT (subject) DO UPDATE SET requests = f.requests + 1 WHERE f.requests + 1 <= {limit}",
        "RETURNING subject)",
        f", l AS (INSERT INTO lease (request_id, subject, expires_at) VALUES {lrows} RETURNING subject)",  # noqa: S608
        "SELECT (SELECT count(*) FROM w), (SELECT count(*) FROM c), (SELECT count(*) FROM l)",
    ]
    return "\n".join(sql), params


def _limit(column: str, tag: str, names: Sequence[str], values: Sequence[int | None], params: dict[str, Any]) -> str:
    """`CASE column WHEN :tag_s0 THEN :tag_v0 ... END`: each subject's own limit (no limit: a huge one)."""
    arms = []
    for i, (name, value) in enumerate(zip(names, values, strict=True)):
        params[f"{tag}_s{i}"], params[f"{tag}_v{i}"] = name, value if value is not None else NO_LIMIT
        arms.append(f"WHEN CAST(:{tag}_s{i} AS text) THEN CAST(:{tag}_v{i} AS bigint)")
    return f"CASE {column} {' '.join(arms)} END"


async def admit(session: AsyncSession, claim: Claim) -> bool:
    """Raise the counts of `claim`; False when a limit refused (the caller must then roll back)."""
    sql, params = admission_sql(claim)
    admitted, counted, _leased = (await session.execute(text(sql), params)).one()
    wanted = sum(1 for s in claim.subjects if s.limits.concurrency is not None)
    return bool(admitted == len(claim.subjects) and counted == wanted)


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
    for s in claim.subjects:
        if refusal := refusal_for(s, usage.get(s.name, Usage()), busy.get(s.name, 0), claim.tokens, now):
            return refusal
    return fallback_refusal(claim)


async def settle(session: AsyncSession, settlements: Sequence[Settlement]) -> None:
    """Replace the reservations by what was used, and end the requests' leases, in one transaction."""
    deltas: dict[tuple[str, datetime], int] = defaultdict(int)
    for s in settlements:
        for name in s.subjects:
            deltas[(name, s.window)] += s.used - s.reserved
    changed = [(k, d) for k, d in deltas.items() if d]
    if changed:
        await session.execute(
            text(
                "UPDATE usage_window AS u SET tokens = u.tokens + d.delta "
                "FROM unnest(CAST(:s AS text[]), CAST(:w AS timestamptz[]), CAST(:d AS bigint[])) "
                "AS d(subject, ws, delta) "
                "WHERE u.subject = d.subject AND u.window_start = d.ws"
            ),
            {"s": [k[0] for k, _ in changed], "w": [k[1] for k, _ in changed], "d": [d for _, d in changed]},
        )
    await _end_leases(session, "request_id = ANY(CAST(:ids AS text[]))", {"ids": [s.request_id for s in settlements]})


async def reap(session: AsyncSession, now: datetime) -> int:
    """Release the leases of requests whose replica never settled them (it died); how many."""
    return await _end_leases(session, "expires_at < :now", {"now": now})


async def _end_leases(session: AsyncSession, where: str, params: dict[str, Any]) -> int:
    """Delete the matching leases and lower each subject's in-flight count by as many."""
    result = await session.execute(
        text(
            f"WITH gone AS (DELETE FROM lease WHERE {where} RETURNING subject), "  # noqa: S608 - fixed clauses
            "n AS (SELECT subject, count(*) AS c FROM gone GROUP BY subject) "
            "UPDATE inflight AS f SET requests = greatest(f.requests - n.c, 0) FROM n WHERE f.subject = n.subject "
            "RETURNING n.c"
        ),
        params,
    )
    return sum(int(row[0]) for row in result)


async def prune_usage(session: AsyncSession, before: datetime) -> None:
    """Forget minute windows older than `before` (retention also does this, in bounded batches)."""
    await session.execute(delete(usage_window).where(usage_window.c.window_start < before))
