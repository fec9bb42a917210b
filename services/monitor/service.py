"""The monitor's service layer for Kafka events: one transaction per event, inbox first."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.monitor.adapters import repository
from services.monitor.adapters.orm import demand_window, inbox, scrape_target, server_model
from services.monitor.domain.cost import ServerCost, cost_per_token, model_per_hour
from services.monitor.domain.fleet import Observation
from services.monitor.domain.rules import Metric
from services.monitor.judging import Verdict, judge, rules_in_force
from services.monitor.settings import MonitorSettings
from shared.events import (
    DemandWindowReported,
    Event,
    ModelLoaded,
    ModelUnloaded,
    PricesPublished,
    ScalingActionOverdue,
    ServerAllocated,
    ServerReleased,
)
from shared.inbox import first_delivery

Sessions = async_sessionmaker[AsyncSession]
NOTHING = Verdict()


async def on_allocation_changed(sessions: Sessions, settings: MonitorSettings, consumer: str, event: Event) -> Verdict:
    """Servers come and go, models move; an allocation with an action id confirms that action."""
    async with sessions.begin() as session:
        if not await first_delivery(session, inbox, consumer, event.event_id):
            return NOTHING
        observations = []
        if isinstance(event, ServerAllocated):
            await repository.upsert_target(session, event)
        elif isinstance(event, ServerReleased):
            await repository.remove_target(session, event.server_id)
            # A released server is not a down one: close any target-down alert it had.
            observations.append(target_observation(event.server_id, event.region, 0))
        elif isinstance(event, ModelLoaded):
            triton_model = event.triton_model or event.model_id
            await repository.set_model(session, event.server_id, event.model_id, triton_model, event.region)
        elif isinstance(event, ModelUnloaded):
            await repository.unset_model(session, event.server_id, event.model_id)
        action_id = getattr(event, "action_id", None)
        if action_id is not None:
            observations.append(Observation(Metric.SCALING_ACTION_WAIT_S, {"action_id": action_id}, 0.0))
        rules = await rules_in_force(session, settings)
        return await judge(session, rules, observations, event.occurred_at, settings.service_name)


async def on_scaling_action_overdue(
    sessions: Sessions, settings: MonitorSettings, consumer: str, event: ScalingActionOverdue
) -> Verdict:
    """An action the allocator has not confirmed in time: alert until an allocation confirms it."""
    async with sessions.begin() as session:
        if not await first_delivery(session, inbox, consumer, event.event_id):
            return NOTHING
        observation = Observation(Metric.SCALING_ACTION_WAIT_S, {"action_id": event.action_id}, event.waited_s)
        rules = await rules_in_force(session, settings)
        return await judge(session, rules, [observation], event.occurred_at, settings.service_name)


async def on_prices_published(sessions: Sessions, consumer: str, event: PricesPublished) -> None:
    """Keep the cost service's price list for cost per token."""
    async with sessions.begin() as session:
        if await first_delivery(session, inbox, consumer, event.event_id):
            await repository.upsert_prices(session, event)


async def on_demand_window(
    sessions: Sessions, settings: MonitorSettings, consumer: str, event: DemandWindowReported
) -> Verdict:
    """Store the router's window with its cost per token; judge latency, errors and cost.

    Rules are evaluated at the window's end (event time), so a replay after a restart reaches the
    same verdicts and a for-duration means "breached across windows spanning that long".
    """
    async with sessions.begin() as session:
        if not await first_delivery(session, inbox, consumer, event.event_id):
            return NOTHING
        window_s = (event.window_end - event.window_start).total_seconds()
        tokens = event.tokens_in + event.tokens_out
        per_hour = model_per_hour(
            await _model_servers(session, event.model_id, event.region), await repository.load_prices(session)
        )
        per_token = cost_per_token(per_hour, window_s, tokens) if per_hour > 0 else None
        await session.execute(
            demand_window.insert().values(
                event_id=event.event_id,
                model_id=event.model_id,
                region=event.region,
                window_start=event.window_start,
                window_end=event.window_end,
                requests=event.requests,
                failed=event.failed,
                rejected=event.rejected,
                tokens=tokens,
                latency_p50_ms=event.latency_p50_ms,
                latency_p95_ms=event.latency_p95_ms,
                latency_p99_ms=event.latency_p99_ms,
                cost_per_token=per_token,
            )
        )
        scope = {"model_id": event.model_id, "region": event.region}
        # Rejected requests (over capacity, deadline passed) failed the user too.
        errors = (event.failed + event.rejected) / event.requests if event.requests else None
        observations = [
            Observation(Metric.LATENCY_P95_MS, scope, event.latency_p95_ms),
            Observation(Metric.ERROR_RATE, scope, errors),
            Observation(Metric.COST_PER_TOKEN, scope, per_token),
        ]
        rules = await rules_in_force(session, settings)
        return await judge(
            session,
            rules,
            observations,
            event.window_end,
            settings.service_name,
            observations,
            settings.signal_cooldown_s,
        )


async def _model_servers(session: AsyncSession, model_id: str, region: str) -> list[ServerCost]:
    """The price facts of the servers holding a model in a region."""
    holding = select(server_model.c.server_id).where(server_model.c.model_id == model_id)
    rows = await session.execute(
        select(scrape_target).where(scrape_target.c.server_id.in_(holding), scrape_target.c.region == region)
    )
    targets = rows.all()
    models_per_server: dict[str, int] = {}
    for row in await session.execute(
        select(server_model.c.server_id).where(server_model.c.server_id.in_([t.server_id for t in targets]))
    ):
        models_per_server[row.server_id] = models_per_server.get(row.server_id, 0) + 1
    return [
        ServerCost(
            t.region, t.gpu_type, t.gpu_count, t.pricing_class, t.cost_per_hour, models_per_server.get(t.server_id, 1)
        )
        for t in targets
    ]


def target_observation(server_id: str, region: str, failures: int) -> Observation:
    """The scrape-failures value of one server (0: it answers, or it is gone)."""
    return Observation(Metric.SCRAPE_FAILURES, {"server_id": server_id, "region": region}, float(failures))
