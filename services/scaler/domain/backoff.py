"""Backing off from a model and region the allocator keeps refusing, and when to say so.

After the k-th consecutive refusal the scaler does not ask for more of that model in that region
before `base * 2^(k-1)` has passed (at most `cap`). A success there (a model loaded) forgets the
refusals. At `alert_after` consecutive refusals a capacity alert fires, once per episode; the
success that ends the episode resolves it.

Only asks for capacity are held back (preloads and scale-ups). Scale-downs and unloads give GPUs
back: the allocator has no reason to refuse them for want of capacity, and holding them back would
keep GPUs busy that the refused model (or another) could use. They go out as the planner decides,
and their refusals do not count here (see `asks_for_capacity`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from services.scaler.domain.planner import PlannedAction
from shared.events import ActionKind

Key = tuple[str, str]  # (model id, region)
ALERT_RULE = "capacity_exhausted"
CAPACITY_KINDS = frozenset({ActionKind.PRELOAD, ActionKind.SCALE_UP})
MAX_DOUBLINGS = 64  # beyond this the cap has long been reached; keeps 2^(k-1) a sane float


@dataclass(frozen=True)
class BackoffPolicy:
    """How long to wait after refusals, and after how many to alert."""

    base: timedelta
    cap: timedelta
    alert_after: int


@dataclass(frozen=True)
class Refusals:
    """The consecutive refusals of a model in a region since its last success."""

    count: int
    last_at: datetime
    last_reason: str
    alert_fired_at: datetime | None = None  # set while the capacity alert of this episode is firing


def asks_for_capacity(kind: ActionKind) -> bool:
    """Whether an action of this kind asks the allocator for GPUs (the only kind backoff holds back)."""
    return kind in CAPACITY_KINDS


def delay(count: int, policy: BackoffPolicy) -> timedelta:
    """How long to wait after the `count`-th consecutive refusal: base * 2^(count-1), capped."""
    if count <= 0:
        return timedelta(0)
    seconds = policy.base.total_seconds() * 2.0 ** min(count - 1, MAX_DOUBLINGS)
    return timedelta(seconds=min(seconds, policy.cap.total_seconds()))


def retry_at(refusals: Refusals, policy: BackoffPolicy) -> datetime:
    """The earliest time the scaler may ask for capacity again."""
    return refusals.last_at + delay(refusals.count, policy)


def may_ask(refusals: Refusals | None, kind: ActionKind, now: datetime, policy: BackoffPolicy) -> bool:
    """Whether an action of `kind` may go out now; only capacity asks wait out the backoff."""
    return refusals is None or not asks_for_capacity(kind) or now >= retry_at(refusals, policy)


def held_back(
    actions: Iterable[PlannedAction], refusals: Mapping[Key, Refusals], now: datetime, policy: BackoffPolicy
) -> list[PlannedAction]:
    """The actions among `actions` that must wait: capacity asks inside their region's backoff."""
    return [a for a in actions if not may_ask(refusals.get((a.model_id, a.region)), a.kind, now, policy)]


def refused(previous: Refusals | None, reason: str, at: datetime, policy: BackoffPolicy) -> tuple[Refusals, bool]:
    """One more refusal; True when it is the one that fires the alert (once per episode)."""
    count = (previous.count if previous else 0) + 1
    fired_at = previous.alert_fired_at if previous else None
    fires = fired_at is None and count >= policy.alert_after
    return Refusals(count, at, reason, at if fires else fired_at), fires


def alert_id(model_id: str, region: str, fired_at: datetime) -> str:
    """The id one episode's firing and resolved events share."""
    return f"{ALERT_RULE}/model_id={model_id},region={region}/{fired_at.isoformat()}"


def alert_message(model_id: str, region: str, refusals: Refusals) -> str:
    """The operator's line: what ran out, where, and the allocator's last word."""
    return (
        f"capacity exhausted for {model_id} in {region}: {refusals.count} refusals in a row, "
        f"last: {refusals.last_reason}"
    )
