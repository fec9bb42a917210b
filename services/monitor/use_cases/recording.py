"""The monitor's service layer for Kafka events: one transaction per event, inbox first."""

from __future__ import annotations

from services.monitor.adapters.repository import Database, monitor_store
from services.monitor.domain.cost import cost_per_token, model_per_hour
from services.monitor.domain.fleet import Observation
from services.monitor.domain.rules import Metric
from services.monitor.settings import MonitorSettings
from services.monitor.use_cases.judging import Verdict, judge, rules_in_force
from shared.events import (
    DemandWindowReported,
    Event,
    ModelLoaded,
    ModelUnloaded,
    PricesPublished,
    ScalingActionOverdue,
    ServerAllocated,
    ServerReleased,
    UsageMetered,
)

Sessions = Database  # the app passes its session factory; unit tests pass a fake store
NOTHING = Verdict()


async def on_allocation_changed(sessions: Sessions, settings: MonitorSettings, consumer: str, event: Event) -> Verdict:
    """Servers come and go, models move; an allocation with an action id confirms that action."""
    async with monitor_store(sessions).transaction() as repo:
        if not await repo.first_delivery(consumer, event.event_id):
            return NOTHING
        observations = []
        if isinstance(event, ServerAllocated):
            await repo.upsert_target(event)
        elif isinstance(event, ServerReleased):
            await repo.remove_target(event.server_id)
            # A released server is not a down one: close any target-down alert it had.
            observations.append(target_observation(event.server_id, event.region, 0))
        elif isinstance(event, ModelLoaded):
            triton_model = event.triton_model or event.model_id
            await repo.set_model(event.server_id, event.model_id, triton_model, event.region)
        elif isinstance(event, ModelUnloaded):
            await repo.unset_model(event.server_id, event.model_id)
        action_id = getattr(event, "action_id", None)
        if action_id is not None:
            observations.append(Observation(Metric.SCALING_ACTION_WAIT_S, {"action_id": action_id}, 0.0))
        rules = await rules_in_force(repo, settings)
        return await judge(repo, rules, observations, event.occurred_at, settings.service_name)


async def on_scaling_action_overdue(
    sessions: Sessions, settings: MonitorSettings, consumer: str, event: ScalingActionOverdue
) -> Verdict:
    """An action the allocator has not confirmed in time: alert until an allocation confirms it."""
    async with monitor_store(sessions).transaction() as repo:
        if not await repo.first_delivery(consumer, event.event_id):
            return NOTHING
        observation = Observation(Metric.SCALING_ACTION_WAIT_S, {"action_id": event.action_id}, event.waited_s)
        rules = await rules_in_force(repo, settings)
        return await judge(repo, rules, [observation], event.occurred_at, settings.service_name)


async def on_prices_published(sessions: Sessions, consumer: str, event: PricesPublished) -> None:
    """Keep the cost service's price list for cost per token."""
    async with monitor_store(sessions).transaction() as repo:
        if await repo.first_delivery(consumer, event.event_id):
            await repo.upsert_prices(event)


async def on_demand_window(
    sessions: Sessions, settings: MonitorSettings, consumer: str, event: DemandWindowReported
) -> Verdict:
    """Store the router's window with its cost per token; judge latency, errors and cost.

    Rules are evaluated at the window's end (event time), so a replay after a restart reaches the
    same verdicts and a for-duration means "breached across windows spanning that long".
    """
    async with monitor_store(sessions).transaction() as repo:
        if not await repo.first_delivery(consumer, event.event_id):
            return NOTHING
        window_s = (event.window_end - event.window_start).total_seconds()
        tokens = event.tokens_in + event.tokens_out
        per_hour = model_per_hour(await repo.model_servers(event.model_id, event.region), await repo.load_prices())
        per_token = cost_per_token(per_hour, window_s, tokens) if per_hour > 0 else None
        await repo.add_demand_window(event, per_token)
        scope = {"model_id": event.model_id, "region": event.region}
        # Rejected requests (over capacity, deadline passed) failed the user too.
        errors = (event.failed + event.rejected) / event.requests if event.requests else None
        observations = [
            Observation(Metric.LATENCY_P95_MS, scope, event.latency_p95_ms),
            Observation(Metric.ERROR_RATE, scope, errors),
            Observation(Metric.COST_PER_TOKEN, scope, per_token),
        ]
        rules = await rules_in_force(repo, settings)
        return await judge(
            repo,
            rules,
            observations,
            event.window_end,
            settings.service_name,
            observations,
            settings.signal_cooldown_s,
        )


def target_observation(server_id: str, region: str, failures: int) -> Observation:
    """The scrape-failures value of one server (0: it answers, or it is gone)."""
    return Observation(Metric.SCRAPE_FAILURES, {"server_id": server_id, "region": region}, float(failures))


async def on_usage_metered(
    sessions: Sessions, settings: MonitorSettings, consumer: str, event: UsageMetered
) -> Verdict:
    """A tenant's month-to-date spend against its budget: alerts at 80% and 100% (resolved when it falls back).

    The gateway puts the enforced figures on every metered period, so no state is kept here but
    the alert's. Judged at the period's end (event time); a tenant without a budget is skipped.
    """
    async with monitor_store(sessions).transaction() as repo:
        if not await repo.first_delivery(consumer, event.event_id):
            return NOTHING
        budget, spent = event.monthly_budget_usd, event.month_spend_usd
        if not budget or spent is None:
            return NOTHING
        scope = {"tenant_id": event.tenant_id, "tenant": event.tenant}
        # A tenant refused over its budget has used it up, even when its spend stays just under.
        used = max(spent / budget, 1.0 if event.budget_refused else 0.0)
        observation = Observation(Metric.BUDGET_SPENT, scope, used)
        rules = await rules_in_force(repo, settings)
        return await judge(repo, rules, [observation], event.period_end, settings.service_name)
