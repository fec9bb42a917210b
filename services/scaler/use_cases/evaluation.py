"""The periodic evaluation: forecast every model, plan its capacity, report overdue actions.

Capacity asks for a model and region the allocator refused lately wait out their backoff
(domain/backoff.py); the plan's other actions go out.

A model's capacity per instance is the GPU performance model's for it (domain/capacity.py, from
the fleet file, read each round so an edit takes effect: each model's own `latency_target_ms`,
else the setting's 2 s), corrected by what its instances on that GPU type were measured to serve
(domain/measured.py), unless `requests_per_instance_hour` is set: then that one figure is every
model's, as the operator set it.

One read of the fleet state, the forecasting off the event loop (it is CPU work), then one
transaction per model for its forecasts, actions and tier, so a failure touches one model only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import numpy as np

from services.scaler.adapters.fleet_file import read_model_specs
from services.scaler.adapters.repository import Database, ScalerRepository, ScalerStore, scaler_store
from services.scaler.domain.backoff import Refusals, held_back
from services.scaler.domain.capacity import FALLBACK_RPH, Reference, capacities
from services.scaler.domain.ensemble import Forecast, forecast
from services.scaler.domain.measured import Measured, corrected
from services.scaler.domain.planner import ModelPlan, PlannedAction, PlanSettings, RegionState, plan_model
from services.scaler.domain.policy import POLICIES
from services.scaler.domain.series import bucket_index, to_series
from services.scaler.domain.tiers import Tier
from services.scaler.settings import ScalerSettings
from services.scaler.use_cases.actions import SOURCE, queue_action
from shared.events import FORECASTS, SCALING_ACTIONS, DemandForecasted, ScalingActionOverdue, ScalingActionRequested

log = logging.getLogger(__name__)
Key = tuple[str, str]


@dataclass
class Snapshot:
    """What one evaluation reads: demand, placements, utilisation, signals, actions and tiers."""

    counts: dict[Key, dict[int, float]]
    last_requests: dict[Key, datetime]
    placements: dict[Key, tuple[int, datetime]]
    utilizations: dict[Key, float]
    pressures: dict[Key, int]
    pending: set[Key]
    last_actions: dict[Key, datetime]
    tiers: dict[str, Tier]
    forecasted: set[tuple[str, str, datetime]]
    refusals: dict[Key, Refusals] = field(default_factory=dict)
    signal_sizes: dict[Key, float] = field(default_factory=dict)  # how far the recent signals push
    measured: dict[Key, Measured] = field(default_factory=dict)  # (model, GPU type) -> measured capacity


@dataclass
class Evaluation:
    """What one evaluation decided and published (through the outbox)."""

    plans: list[ModelPlan] = field(default_factory=list)
    forecasts: list[DemandForecasted] = field(default_factory=list)
    actions: list[ScalingActionRequested] = field(default_factory=list)
    overdue: list[ScalingActionOverdue] = field(default_factory=list)
    held_back: list[PlannedAction] = field(default_factory=list)  # capacity asks waiting out a backoff


def _at(bucket: int, bucket_s: int) -> datetime:
    return datetime.fromtimestamp(bucket * bucket_s, tz=UTC)


async def read_snapshot(repo: ScalerRepository, settings: ScalerSettings, now: datetime) -> Snapshot:
    """The fleet state an evaluation at `now` works from."""
    current = bucket_index(now, settings.bucket_s)
    since = _at(current - settings.history_buckets, settings.bucket_s)
    # Only what can still matter: actions inside the cooldown, requests inside the idle time.
    pending, last_actions = await repo.action_state(now - timedelta(seconds=settings.cooldown_s))
    return Snapshot(
        counts=await repo.demand_counts(since, _at(current, settings.bucket_s), settings.bucket_s),
        last_requests=await repo.last_requests(now - timedelta(seconds=settings.cold_idle_s)),
        placements=await repo.placements(),
        utilizations=await repo.utilizations(now - timedelta(seconds=settings.utilization_max_age_s)),
        pressures=await repo.pressures(now - timedelta(seconds=settings.signal_max_age_s)),
        signal_sizes=await repo.signal_sizes(now - timedelta(seconds=settings.signal_max_age_s)),
        pending=pending,
        last_actions=last_actions,
        tiers=await repo.tiers(),
        forecasted=await repo.forecasted_horizons(_at(current, settings.bucket_s)),
        refusals=await repo.refusals(),
        measured=await repo.measured_capacities(),
    )


def forecast_all(snapshot: Snapshot, settings: ScalerSettings, now: datetime) -> dict[Key, Forecast]:
    """A forecast for every model and region with demand or instances (pure CPU work)."""
    current = bucket_index(now, settings.bucket_s)
    first = current - settings.history_buckets
    result = {}
    for key in snapshot.counts.keys() | snapshot.placements.keys():
        counts = snapshot.counts.get(key, {})
        start = max(first, min(counts, default=first))  # a new model's history starts with its first window
        series = to_series(counts, start, current - 1)
        result[key] = forecast(series, settings.horizon_buckets, settings.seasons)
    return result


def region_states(
    snapshot: Snapshot, forecasts: dict[Key, Forecast], settings: ScalerSettings
) -> dict[str, list[RegionState]]:
    """The planner's view of each model, region by region."""
    hour = max(1, round(3600 / settings.bucket_s))
    models: dict[str, list[RegionState]] = {}
    # Regions with only an action so far (a tier preload in flight) keep their pending/cooldown state.
    acted = {key for key in snapshot.pending | snapshot.last_actions.keys() if key not in forecasts}
    idle = Forecast(values=np.zeros(settings.horizon_buckets), confidence=0.0)
    modelled = {model for model, _ in forecasts}
    everything = {**forecasts, **{key: idle for key in acted if key[0] in modelled}}
    for key, result in everything.items():
        count, loaded_at = snapshot.placements.get(key, (0, None))
        # A signal for the region, else one for every region of the model (region "").
        signalled = key if snapshot.pressures.get(key) else (key[0], "")
        pressure = snapshot.pressures.get(signalled, 0)
        models.setdefault(key[0], []).append(
            RegionState(
                region=key[1],
                instances=count,
                utilization=snapshot.utilizations.get(key),
                pressure=pressure,
                signal_change=snapshot.signal_sizes.get(signalled) if pressure else None,
                pending=key in snapshot.pending,
                last_action_at=snapshot.last_actions.get(key),
                last_request_at=snapshot.last_requests.get(key),
                loaded_since=loaded_at,
                # Provision for the 0.9 quantile, not the mean: under-provisioning costs the SLO,
                # over-provisioning only GPU-hours (issue 18).
                predicted_rph=max(result.provision_per_hour(settings.bucket_s)[:hour], default=0.0),
                next_hour_requests=result.next_hour_requests(settings.bucket_s),
                confidence=result.confidence,
            )
        )
    return models


def capacity_per_instance(
    settings: ScalerSettings, measured: dict[Key, Measured] | None = None, now: datetime | None = None
) -> Callable[[str], float]:
    """Model id -> requests per hour one instance serves.

    The setting when set (the operator's figure, not corrected); else the performance model's for
    the model's preferred GPU type at its own latency target (1,000 for a model it cannot size),
    corrected by the instances' measured capacity on that GPU type (`domain/measured.corrected`).
    """
    if settings.requests_per_instance_hour is not None:
        override = settings.requests_per_instance_hour
        return lambda _model_id: override
    try:
        specs = read_model_specs(settings.fleet_config)
    except (OSError, ValueError) as error:
        log.warning("no capacity per model (%s): %g requests/h per instance for every model", error, FALLBACK_RPH)
        specs = {}
    reference = Reference(
        settings.reference_prompt_tokens,
        settings.reference_output_tokens,
        settings.latency_target_ms,
        settings.max_batch,
    )
    known = {model_id: c.requests_per_hour for model_id, c in capacities(specs, reference).items()}
    measured = measured or {}
    at = now or datetime.now(UTC)
    sized = {
        model_id: corrected(known.get(model_id, FALLBACK_RPH), measured.get((model_id, spec.gpu_type)), at)
        for model_id, spec in specs.items()
    }
    return lambda model_id: sized.get(model_id, known.get(model_id, FALLBACK_RPH))


def forecast_event(
    key: Key, result: Forecast, settings: ScalerSettings, now: datetime, tier: Tier | None = None
) -> DemandForecasted:
    """The published form of a forecast: requests per hour per bucket, confidence, each predictor's value."""
    per_hour = 3600.0 / settings.bucket_s
    return DemandForecasted(
        source=SOURCE,
        occurred_at=now,
        model_id=key[0],
        region=key[1],
        horizon_start=_at(bucket_index(now, settings.bucket_s), settings.bucket_s),
        requests_per_hour=[round(v, 3) for v in result.per_hour(settings.bucket_s)],
        confidence=round(result.confidence, 4),
        predictors={name: round(float(values[0]) * per_hour, 3) for name, values in result.predictions.items()},
        bucket_s=settings.bucket_s,
        tier=tier.value if tier is not None else None,
    )


async def evaluate(
    sessions: Database, settings: ScalerSettings, now: datetime, new_id: Callable[[], str]
) -> Evaluation:
    """One round: forecasts, plans and actions per model, then overdue actions."""
    store = scaler_store(sessions)
    async with store.transaction() as repo:
        snapshot = await read_snapshot(repo, settings, now)
    forecasts = await asyncio.to_thread(forecast_all, snapshot, settings, now)
    capacity = await asyncio.to_thread(capacity_per_instance, settings, snapshot.measured, now)
    plan_settings = PlanSettings(
        policy=POLICIES[settings.policy],
        requests_per_instance_hour=FALLBACK_RPH,
        cooldown=timedelta(seconds=settings.cooldown_s),
        cold_idle=timedelta(seconds=settings.cold_idle_s),
        max_instances=settings.max_instances,
    )
    done = Evaluation()
    for model_id, states in sorted(region_states(snapshot, forecasts, settings).items()):
        sized = replace(plan_settings, requests_per_instance_hour=capacity(model_id))
        plan = plan_model(model_id, states, snapshot.tiers.get(model_id), sized, now)
        waiting = held_back(plan.actions, snapshot.refusals, now, settings.backoff)
        if waiting:  # the allocator refused these lately: ask again only after the backoff
            plan = replace(plan, actions=tuple(a for a in plan.actions if a not in waiting))
            done.held_back.extend(waiting)
        mine = {key: result for key, result in forecasts.items() if key[0] == model_id}
        try:
            await _apply(store, snapshot, plan, mine, settings, now, new_id, done)
        except Exception:
            log.exception("evaluation of %s failed; the next round tries again", model_id)
    done.overdue = await report_overdue(store, now, timedelta(seconds=settings.action_timeout_s))
    return done


async def _apply(
    store: ScalerStore,
    snapshot: Snapshot,
    plan: ModelPlan,
    forecasts: dict[Key, Forecast],
    settings: ScalerSettings,
    now: datetime,
    new_id: Callable[[], str],
    done: Evaluation,
) -> None:
    events, actions = [], []
    async with store.transaction() as repo:
        for key, result in sorted(forecasts.items()):
            event = forecast_event(key, result, settings, now, plan.tier)
            if (key[0], key[1], event.horizon_start) in snapshot.forecasted:
                continue  # this bucket's forecast is out already; a new one comes with the next bucket
            extra = {"weights": result.weights, "errors": result.errors}
            await repo.save_forecast(event, settings.bucket_s, extra)
            await repo.announce(FORECASTS, event, key=key[0])
            events.append(event)
        for action in plan.actions:
            actions.append(await queue_action(repo, action, new_id(), now))
        await repo.save_tier(plan.model_id, plan.tier, plan.total_rph, now)
    done.plans.append(plan)
    done.forecasts.extend(events)
    done.actions.extend(actions)


async def report_overdue(store: ScalerStore, now: datetime, timeout: timedelta) -> list[ScalingActionOverdue]:
    """Mark actions unconfirmed past `timeout` as overdue and queue an event for each."""
    async with store.transaction() as repo:
        events = [
            ScalingActionOverdue(
                source=SOURCE, occurred_at=now, action_id=action_id, model_id=model_id, region=region,
                requested_at=requested_at, waited_s=round((now - requested_at).total_seconds(), 3),
            )
            for action_id, model_id, region, requested_at in await repo.mark_overdue(now - timeout)
        ]  # fmt: skip
        for event in events:
            await repo.announce(SCALING_ACTIONS, event, key=event.model_id)
    return events
