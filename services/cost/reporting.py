"""Reports and recommendations: one transaction per cycle, each change announced once via the outbox."""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.cost.adapters import repository
from services.cost.adapters.orm import cost_report, demand_window, forecast, inbox, outbox, recommendation
from services.cost.domain.cycle import Evaluation, Params, evaluate
from services.cost.domain.fleet import Server
from services.cost.domain.recommendation import Recommendation
from shared.events import COST_RECOMMENDATIONS, COST_REPORTS, CostRecommended, CostReported, CostReportRequested
from shared.inbox import first_delivery
from shared.outbox import add_to_outbox

# Replicas of the service take turns: the one holding this lock runs the cycle, the others skip it.
_CYCLE_LOCK = 7_000_001


@dataclass(frozen=True)
class CycleContext:
    """What a cycle needs besides the database: clock, ids and knobs are passed in."""

    now: datetime
    report_id: str
    source: str
    params: Params
    lookback_s: float
    trigger: Literal["schedule", "on_demand"] = "schedule"
    requested_by: str | None = None


@dataclass(frozen=True)
class CycleResult:
    """The report sent, the recommendations announced, and what stays open (for metrics)."""

    report: CostReported
    evaluation: Evaluation
    announced: list[CostRecommended] = field(default_factory=list)
    open_savings_by_kind: dict[str, float] = field(default_factory=dict)


async def run_cycle(sessions: async_sessionmaker[AsyncSession], ctx: CycleContext) -> CycleResult | None:
    """The scheduled cycle; None when another replica is running it."""
    async with sessions.begin() as session:
        locked = await session.execute(text("select pg_try_advisory_xact_lock(:k)"), {"k": _CYCLE_LOCK})
        if not locked.scalar_one():
            return None
        return await _cycle(session, ctx)


async def report_on_request(
    sessions: async_sessionmaker[AsyncSession], consumer: str, event: CostReportRequested, ctx: CycleContext
) -> CycleResult | None:
    """Answer an operator's report request once; None for a redelivery."""
    async with sessions.begin() as session:
        if not await first_delivery(session, inbox, consumer, event.event_id):
            return None
        # Wait for a running cycle, but not forever: a timeout is a transient error, so the request comes again.
        await session.execute(text("set local lock_timeout = '30s'"))
        await session.execute(text("select pg_advisory_xact_lock(:k)"), {"k": _CYCLE_LOCK})
        return await _cycle(session, ctx)


async def _cycle(session: AsyncSession, ctx: CycleContext) -> CycleResult:
    since = ctx.now - timedelta(seconds=ctx.lookback_s)
    # Old demand and forecasts of models long gone would otherwise be carried forever.
    await session.execute(delete(demand_window).where(demand_window.c.window_end < since - timedelta(days=1)))
    await session.execute(delete(forecast).where(forecast.c.horizon_start < ctx.now - timedelta(days=2)))
    servers = await repository.load_servers(session)
    # The solver and the plan search are CPU work: off the event loop, so consumers keep heartbeating.
    evaluation = await asyncio.to_thread(
        evaluate,
        servers,
        await repository.load_windows(session, since),
        await repository.load_forecasts(session),
        await repository.load_catalogue(session),
        ctx.params,
    )
    report = _report(evaluation, servers, ctx)
    await session.execute(
        cost_report.insert().values(
            report_id=ctx.report_id,
            trigger=ctx.trigger,
            created_at=ctx.now,
            total_per_hour=report.total_per_hour,
            body={
                "report": report.model_dump(mode="json"),
                "servers": [s.server_id for s in servers],
                "region_plans": {m: [asdict(p) for p in ps] for m, ps in evaluation.region_plans.items()},
            },
        )
    )
    await add_to_outbox(session, outbox, COST_REPORTS, report, key="fleet")
    announced = [
        event for rec in evaluation.recommendations if (event := await _remember(session, rec, ctx)) is not None
    ]
    await _withdraw_missing(session, {rec.key for rec in evaluation.recommendations}, ctx.now)
    return CycleResult(report, evaluation, announced, await _open_savings(session))


def _report(evaluation: Evaluation, servers: list[Server], ctx: CycleContext) -> CostReported:
    cost = evaluation.cost
    return CostReported(
        source=ctx.source,
        occurred_at=ctx.now,
        total_per_hour=cost.total,
        by_model_per_hour=cost.by_model,
        per_1k_tokens=evaluation.per_1k_tokens,
        report_id=ctx.report_id,
        trigger=ctx.trigger,
        requested_by=ctx.requested_by,
        by_region_per_hour=cost.by_region,
        by_gpu_type_per_hour=cost.by_gpu_type,
        by_pricing_class_per_hour=cost.by_pricing_class,
        servers=len(servers),
        gpus=sum(s.gpu_count for s in servers),
    )


async def _remember(session: AsyncSession, rec: Recommendation, ctx: CycleContext) -> CostRecommended | None:
    """Store a recommendation; the event to announce when it is new or back after another one."""
    rid = rec.recommendation_id
    row = {
        "key": rec.key,
        "kind": rec.kind,
        "region": rec.region,
        "gpu_type": rec.gpu_type,
        "model_id": rec.model_id,
        "summary": rec.summary[:2000],
        "savings_per_month": rec.savings_per_month,
        "action": rec.action,
        "evidence": rec.evidence,
        "status": "open",
        "created_at": ctx.now,
        "updated_at": ctx.now,
    }
    inserted = await session.execute(
        insert(recommendation)
        .values(recommendation_id=rid, **row)
        .on_conflict_do_nothing()
        .returning(recommendation.c.recommendation_id)
    )
    if inserted.first() is None:
        # Known: refresh its evidence; announce again only if it had been replaced or withdrawn since.
        reopened = await session.execute(
            update(recommendation)
            .where(
                (recommendation.c.recommendation_id == rid) & recommendation.c.status.in_(["superseded", "withdrawn"])
            )
            .values(status="open", updated_at=ctx.now, evidence=rec.evidence, savings_per_month=rec.savings_per_month)
            .returning(recommendation.c.recommendation_id)
        )
        if reopened.first() is None:
            await session.execute(
                update(recommendation)
                .where(recommendation.c.recommendation_id == rid)
                .values(evidence=rec.evidence, updated_at=ctx.now)
            )
            return None
    await session.execute(
        update(recommendation)
        .where((recommendation.c.key == rec.key) & (recommendation.c.recommendation_id != rid))
        .where(recommendation.c.status == "open")
        .values(status="superseded", updated_at=ctx.now)
    )
    event = CostRecommended(
        source=ctx.source,
        occurred_at=ctx.now,
        recommendation_id=rid,
        kind=rec.kind,  # type: ignore[arg-type]  # the domain's kinds are the event's literals
        region=rec.region,
        gpu_type=rec.gpu_type,
        model_id=rec.model_id,
        summary=rec.summary,
        savings_per_month=rec.savings_per_month,
        evidence={**rec.evidence, "action": rec.action, "key": rec.key},
    )
    await add_to_outbox(session, outbox, COST_RECOMMENDATIONS, event, key=rec.key)
    return event


async def _withdraw_missing(session: AsyncSession, keys: set[str], now: datetime) -> None:
    """Open recommendations whose condition no longer holds are withdrawn (no event: nothing to do)."""
    await session.execute(
        update(recommendation)
        .where((recommendation.c.status == "open") & recommendation.c.key.not_in(keys or {""}))
        .values(status="withdrawn", updated_at=now)
    )


async def _open_savings(session: AsyncSession) -> dict[str, float]:
    rows = await session.execute(
        select(recommendation.c.kind, func.sum(recommendation.c.savings_per_month))
        .where(recommendation.c.status == "open")
        .group_by(recommendation.c.kind)
    )
    return {kind: float(total) for kind, total in rows.all()}
