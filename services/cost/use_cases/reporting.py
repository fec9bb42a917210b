"""Reports and recommendations: one transaction per cycle, each change announced once via the outbox."""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from services.cost.adapters.repository import CostRepository, Database, cost_store
from services.cost.domain.cycle import Evaluation, Params, evaluate
from services.cost.domain.fleet import Server, committed_per_hour
from services.cost.domain.recommendation import Recommendation
from shared.events import COST_RECOMMENDATIONS, COST_REPORTS, CostRecommended, CostReported, CostReportRequested

# An on-demand report waits this long for a running cycle; a timeout is transient, so the request comes again.
ON_DEMAND_WAIT_S = 30.0


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


async def run_cycle(sessions: Database, ctx: CycleContext) -> CycleResult | None:
    """The scheduled cycle; None when another replica is running it."""
    async with cost_store(sessions).transaction() as repo:
        if not await repo.try_lead_cycle():
            return None
        return await _cycle(repo, ctx)


async def report_on_request(
    sessions: Database, consumer: str, event: CostReportRequested, ctx: CycleContext
) -> CycleResult | None:
    """Answer an operator's report request once; None for a redelivery."""
    async with cost_store(sessions).transaction() as repo:
        if not await repo.first_delivery(consumer, event.event_id):
            return None
        await repo.wait_to_lead_cycle(ON_DEMAND_WAIT_S)
        return await _cycle(repo, ctx)


async def _cycle(repo: CostRepository, ctx: CycleContext) -> CycleResult:
    since = ctx.now - timedelta(seconds=ctx.lookback_s)
    # Old demand and forecasts of models long gone would otherwise be carried forever.
    await repo.prune_inputs(since - timedelta(days=1), ctx.now - timedelta(days=2))
    servers = await repo.load_servers()
    # The solver and the plan search are CPU work: off the event loop, so consumers keep heartbeating.
    evaluation = await asyncio.to_thread(
        evaluate,
        servers,
        await repo.load_windows(since),
        await repo.load_forecasts(),
        await repo.load_catalogue(),
        ctx.params,
    )
    capacity = await repo.load_capacity()
    report = _report(evaluation, servers, ctx).model_copy(
        update={
            "capacity_by_pool": {
                p.key: {"on_demand": p.on_demand, "spot": p.spot, "reserved": p.reserved} for p in capacity
            },
            "committed_per_hour": committed_per_hour(capacity, await repo.load_catalogue()),
        }
    )
    body = {
        "report": report.model_dump(mode="json"),
        "servers": [s.server_id for s in servers],
        "region_plans": {m: [asdict(p) for p in ps] for m, ps in evaluation.region_plans.items()},
    }
    await repo.add_report(ctx.report_id, ctx.trigger, ctx.now, report.total_per_hour, body)
    await repo.announce(COST_REPORTS, report, key="fleet")
    announced = [event for rec in evaluation.recommendations if (event := await _remember(repo, rec, ctx)) is not None]
    # Open recommendations whose condition no longer holds are withdrawn (no event: nothing to do).
    await repo.withdraw_open_except({rec.key for rec in evaluation.recommendations}, ctx.now)
    return CycleResult(report, evaluation, announced, await repo.open_savings_by_kind())


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


async def _remember(repo: CostRepository, rec: Recommendation, ctx: CycleContext) -> CostRecommended | None:
    """Store a recommendation; the event to announce when it is new or back after another one."""
    if not await repo.add_recommendation(rec, ctx.now) and not await repo.reopen_recommendation(rec, ctx.now):
        # Known and still open (or applied): refresh its evidence, announce nothing.
        await repo.refresh_recommendation(rec, ctx.now)
        return None
    await repo.supersede_others(rec, ctx.now)
    event = CostRecommended(
        source=ctx.source,
        occurred_at=ctx.now,
        recommendation_id=rec.recommendation_id,
        kind=rec.kind,  # type: ignore[arg-type]  # the domain's kinds are the event's literals
        region=rec.region,
        gpu_type=rec.gpu_type,
        model_id=rec.model_id,
        summary=rec.summary,
        savings_per_month=rec.savings_per_month,
        evidence={**rec.evidence, "action": rec.action, "key": rec.key},
    )
    await repo.announce(COST_RECOMMENDATIONS, event, key=rec.key)
    return event
