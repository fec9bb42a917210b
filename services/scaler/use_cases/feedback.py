"""The allocator's answers as feedback: refusals back the scaler off and alert; a load ends both.

Runs inside the transaction that records the allocation event (recording.py), so the count, the
alert in the outbox and the inbox row commit together and a redelivery changes nothing.
"""

from __future__ import annotations

from datetime import datetime

from services.scaler.adapters.repository import ScalerRepository
from services.scaler.domain.backoff import (
    ALERT_RULE,
    BackoffPolicy,
    alert_id,
    alert_message,
    asks_for_capacity,
    refused,
)
from services.scaler.use_cases.actions import SOURCE
from shared.events import ALERTS, AlertChanged, AlertState, AllocationFailed, ModelLoaded, Severity


async def note_refusal(repo: ScalerRepository, event: AllocationFailed, policy: BackoffPolicy, now: datetime) -> None:
    """Count a refusal of capacity; at `alert_after` in a row, queue the 'capacity exhausted' alert."""
    kind = await repo.action_kind(event.action_id) if event.action_id else None
    if kind is not None and not asks_for_capacity(kind):
        return  # a refused scale-down or unload says nothing about capacity running out
    previous = await repo.refusals_of(event.model_id, event.region)
    refusals, fires = refused(previous, event.reason, now, policy)
    await repo.save_refusals(event.model_id, event.region, refusals)
    if fires:
        await _alert(repo, event.model_id, event.region, AlertState.FIRING, now, refusals.count, policy, now,
                     alert_message(event.model_id, event.region, refusals))  # fmt: skip


async def note_success(repo: ScalerRepository, event: ModelLoaded, policy: BackoffPolicy, now: datetime) -> None:
    """A model loaded in the region: its refusals no longer count, and a firing capacity alert resolves."""
    refusals = await repo.refusals_of(event.model_id, event.region)
    if refusals is None:
        return
    await repo.forget_refusals(event.model_id, event.region)
    if refusals.alert_fired_at is not None:
        message = f"capacity found for {event.model_id} in {event.region}: loaded on {event.server_id}"
        await _alert(repo, event.model_id, event.region, AlertState.RESOLVED, refusals.alert_fired_at, 0, policy,
                     now, message)  # fmt: skip


async def _alert(
    repo: ScalerRepository,
    model_id: str,
    region: str,
    state: AlertState,
    fired_at: datetime,
    count: int,
    policy: BackoffPolicy,
    now: datetime,
    message: str,
) -> None:
    event = AlertChanged(
        source=SOURCE,
        occurred_at=now,
        alert_id=alert_id(model_id, region, fired_at),
        rule=ALERT_RULE,
        severity=Severity.HIGH,
        state=state,
        value=float(count),
        threshold=float(policy.alert_after),
        scope={"model_id": model_id, "region": region},
        message=message,
    )
    await repo.announce(ALERTS, event, key=event.alert_id[:200])
