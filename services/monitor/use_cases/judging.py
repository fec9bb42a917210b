"""Observations in, alerts and scaling signals out: state in the tables, events into the outbox."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from services.monitor.adapters.alert_tables import state_row
from services.monitor.adapters.repository import MonitorRepository
from services.monitor.domain.alerts import AlertStatus, alert_id, evaluate, scope_key
from services.monitor.domain.fleet import Observation
from services.monitor.domain.rules import BUDGET_RULES, AlertRule, control_plane_rules
from services.monitor.domain.signals import Signal, due, signals_for
from services.monitor.settings import MonitorSettings
from shared.events import ALERTS, SCALING_SIGNALS, AlertChanged, ScalingSignalRaised


@dataclass
class Verdict:
    """What one batch of observations changed."""

    alerts: list[AlertChanged] = field(default_factory=list)
    signals: list[ScalingSignalRaised] = field(default_factory=list)


async def judge(
    repo: MonitorRepository,
    rules: Sequence[AlertRule],
    observations: Sequence[Observation],
    now: datetime,
    source: str,
    signal_inputs: Sequence[Observation] = (),
    signal_cooldown_s: float = 0.0,
) -> Verdict:
    """Evaluate the rules on `observations` and the signal rules on `signal_inputs`; queue what changed."""
    verdict = Verdict(alerts=await _alerts(repo, rules, observations, now, source))
    if signal_inputs:
        verdict.signals = await _signals(repo, signal_inputs, now, source, signal_cooldown_s)
    return verdict


async def _alerts(
    repo: MonitorRepository, rules: Sequence[AlertRule], observations: Sequence[Observation], now: datetime, source: str
) -> list[AlertChanged]:
    pairs = [(r, o) for o in observations if o.value is not None for r in rules if r.metric is o.metric]
    keys = [(r.name, scope_key(o.scope)) for r, o in pairs]
    states = await repo.load_alert_states(keys)
    rows, events = [], []
    for (rule, observation), key in zip(pairs, keys, strict=True):
        previous = states.get(key, AlertStatus())
        status, change = evaluate(rule, observation.value, now, previous)
        states[key] = status  # two observations of one scope in a batch see each other
        if (status.phase, status.since) != (previous.phase, previous.since) or change is not None:
            rows.append(state_row(rule, key[1], dict(observation.scope), status, now))
        if change is not None:
            event = AlertChanged(
                source=source,
                occurred_at=now,
                alert_id=alert_id(rule.name, observation.scope, change.fired_at),
                rule=rule.name,
                severity=rule.severity,
                state=change.state,
                value=change.value,
                threshold=change.threshold,
                scope=dict(observation.scope),
                message=f"{rule.metric.value}={change.value:g} ({rule.direction.value} {rule.threshold:g})",
            )
            events.append(event)
            await repo.announce(ALERTS, event, key=event.alert_id[:200])
    await repo.save_alert_states(_last_per_key(rows))
    await repo.add_alert_history(events)
    return events


def _last_per_key(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    """One upsert row per key (Postgres refuses two for the same row in one statement)."""
    return list({(r["rule"], r["scope_key"]): r for r in rows}.values())


async def _signals(
    repo: MonitorRepository, observations: Sequence[Observation], now: datetime, source: str, cooldown_s: float
) -> list[ScalingSignalRaised]:
    found: list[tuple[Signal, Observation, str]] = [
        (s, o, scope_key(o.scope)) for o in observations for s in signals_for(o.metric, o.value)
    ]
    last = await repo.signals_raised_at([(s.kind.value, key) for s, _, key in found])
    events = []
    for signal, observation, key in found:
        if not due(last.get((signal.kind.value, key)), now, cooldown_s):
            continue
        last[(signal.kind.value, key)] = now
        scope = observation.scope
        event = ScalingSignalRaised(
            source=source,
            occurred_at=now,
            kind=signal.kind,
            model_id=scope.get("model_id"),
            server_id=scope.get("server_id"),
            region=scope.get("region"),
            gpu_type=scope.get("gpu_type"),
            metric=signal.metric.value,
            value=signal.value,
            threshold=signal.threshold,
            factor=signal.factor,
            target=signal.target,
        )
        await repo.mark_signal(signal.kind.value, key, now)
        await repo.announce(SCALING_SIGNALS, event, key=scope.get("model_id") or key[:200])
        events.append(event)
    return events


async def rules_in_force(repo: MonitorRepository, settings: MonitorSettings) -> list[AlertRule]:
    """The operators' rules table plus the control-plane rules whose thresholds are settings."""
    from_table = await repo.load_rules()
    return [*from_table, *control_plane_rules(settings.target_down_after, settings.lag_threshold), *BUDGET_RULES]
