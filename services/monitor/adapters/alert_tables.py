"""Alert states and history in the monitor's tables."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.monitor.adapters.orm import alert_history, alert_state
from services.monitor.adapters.sql import in_text_array
from services.monitor.domain.alerts import AlertStatus, Phase
from services.monitor.domain.rules import AlertRule
from shared.events import AlertChanged


class AlertTables:
    """SQL of alert states and history (part of the SQL repository; the caller owns the transaction)."""

    _session: AsyncSession

    async def load_alert_states(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], AlertStatus]:
        """The states of (rule, scope key) pairs, locked until commit so replicas do not race."""
        if not keys:
            return {}
        # Over-fetches the cross product of the two sets; the pairs not asked for are dropped below.
        query = (
            select(alert_state)
            .where(
                in_text_array(alert_state.c.rule, (k[0] for k in keys)),
                in_text_array(alert_state.c.scope_key, (k[1] for k in keys)),
            )
            .with_for_update()
        )
        wanted = set(keys)
        return {
            (r.rule, r.scope_key): AlertStatus(Phase(r.phase), r.since, r.fired_at, r.value)
            for r in await self._session.execute(query)
            if (r.rule, r.scope_key) in wanted
        }

    async def save_alert_states(self, rows: list[dict[str, Any]]) -> None:
        """Upsert changed states: rule, scope_key, scope, severity, phase, since, fired_at, value, updated_at."""
        if not rows:
            return
        statement = insert(alert_state).values(rows)
        columns = ("scope", "severity", "phase", "since", "fired_at", "value", "updated_at")
        await self._session.execute(
            statement.on_conflict_do_update(
                index_elements=["rule", "scope_key"], set_={c: statement.excluded[c] for c in columns}
            )
        )

    async def add_alert_history(self, events: list[AlertChanged]) -> None:
        """Append firings and resolutions to the alert history."""
        if not events:
            return
        await self._session.execute(
            alert_history.insert().values(
                [
                    {
                        "alert_id": e.alert_id,
                        "rule": e.rule,
                        "severity": e.severity.value,
                        "state": e.state.value,
                        "value": e.value,
                        "threshold": e.threshold,
                        "scope": e.scope,
                        "occurred_at": e.occurred_at,
                    }
                    for e in events
                ]
            )
        )

    async def firing_counts(self) -> dict[tuple[str, str], int]:
        """How many alerts fire now, per (rule, severity)."""
        query = (
            select(alert_state.c.rule, alert_state.c.severity, func.count())
            .where(alert_state.c.phase == Phase.FIRING.value)
            .group_by(alert_state.c.rule, alert_state.c.severity)
        )
        return {(rule, severity): int(count) for rule, severity, count in await self._session.execute(query)}


def state_row(rule: AlertRule, key: str, scope: dict[str, str], status: AlertStatus, now: datetime) -> dict[str, Any]:
    """The alert_state row for a status."""
    return {
        "rule": rule.name,
        "severity": rule.severity.value,
        "scope_key": key,
        "scope": scope,
        "phase": status.phase.value,
        "since": status.since,
        "fired_at": status.fired_at,
        "value": status.value,
        "updated_at": now,
    }
