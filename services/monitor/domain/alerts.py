"""The alert state machine: (rule, value, now, previous) -> (next state, a change to announce or None).

OK -> PENDING when the value breaches; PENDING -> FIRING once it has breached for the rule's
for-duration (at once when that is 0); PENDING -> OK if it recovers first (nothing announced).
FIRING stays FIRING while the value is inside the hysteresis band and resolves only once it is
past it. So an alert fires once and resolves once, however the value wobbles around the threshold.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from services.monitor.domain.rules import AlertRule, breached, cleared
from shared.events import AlertState


class Phase(StrEnum):
    OK = "ok"
    PENDING = "pending"
    FIRING = "firing"


@dataclass(frozen=True)
class AlertStatus:
    """Where one rule stands for one scope; `since` is when the breach began."""

    phase: Phase = Phase.OK
    since: datetime | None = None
    fired_at: datetime | None = None
    value: float | None = None


@dataclass(frozen=True)
class AlertChange:
    """A firing or a resolution to announce; `fired_at` identifies the episode."""

    state: AlertState
    value: float
    threshold: float
    fired_at: datetime


def evaluate(
    rule: AlertRule, value: float | None, now: datetime, previous: AlertStatus
) -> tuple[AlertStatus, AlertChange | None]:
    """Advance the state machine by one observation; no value (no data) changes nothing."""
    if value is None or not rule.enabled:
        return previous, None
    if previous.phase is Phase.FIRING:
        assert previous.fired_at is not None
        if cleared(rule, value):
            return AlertStatus(), AlertChange(AlertState.RESOLVED, value, rule.threshold, previous.fired_at)
        return AlertStatus(Phase.FIRING, previous.since, previous.fired_at, value), None
    if not breached(rule, value):
        return AlertStatus(), None
    since = previous.since if previous.phase is Phase.PENDING and previous.since is not None else now
    if (now - since).total_seconds() >= rule.for_s:
        return AlertStatus(Phase.FIRING, since, now, value), AlertChange(AlertState.FIRING, value, rule.threshold, now)
    return AlertStatus(Phase.PENDING, since, None, value), None


def scope_key(scope: Mapping[str, str]) -> str:
    """A stable text key for a scope: its labels sorted, k=v joined by commas."""
    return ",".join(f"{k}={v}" for k, v in sorted(scope.items()))


def alert_id(rule_name: str, scope: Mapping[str, str], fired_at: datetime) -> str:
    """The id shared by one episode's firing and resolved events."""
    return f"{rule_name}/{scope_key(scope)}/{fired_at.isoformat()}"
