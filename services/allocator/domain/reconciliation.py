"""What the reconciler should mend: the records compared with the running fleet (pure; no I/O).

The allocator's tables say which servers exist and what they serve; the provisioner says which
server processes (or pool members) exist, whether they answer, and which models they have
loaded. `reconcile` turns the difference into repairs, which `use_cases.reconciling` carries out.

Servers and placements that an action in progress owns are left to its worker: only the
reconciler's own timeout (`stuck_actions`) takes an action away from a worker that died.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from shared.streaming import stream_variant


@dataclass(frozen=True)
class PlacementOnRecord:
    """A model on a recorded server: its Triton name, state (loading, ready, unloading) and instances."""

    model_id: str
    triton_model: str
    state: str
    instances: int


@dataclass(frozen=True)
class ServerOnRecord:
    """A live server row (starting, running or stopping) and whether an action in progress owns it."""

    server_id: str
    region: str
    state: str
    busy: bool
    endpoint: str | None = None
    unhealthy_since: datetime | None = None
    placements: tuple[PlacementOnRecord, ...] = ()
    reclaim_at: datetime | None = None  # a draining spot server: when the cloud takes it (None: a move)
    replaced: bool = False  # a draining server whose replacement actions are all done
    replacement_failed: bool = False  # ... or all ended, and one failed


@dataclass(frozen=True)
class ServerObserved:
    """What the provisioner sees of a server: its process is up, it answers, what it has loaded."""

    server_id: str
    alive: bool
    ready: bool
    loaded: frozenset[str] | None = None  # Triton names READY on it; None when it could not be read


@dataclass(frozen=True)
class ActionOnRecord:
    """An action in progress: when it was taken, how often, and whether a worker's lease still runs."""

    action_id: str
    model_id: str
    region: str
    created_at: datetime
    attempts: int
    leased: bool


@dataclass(frozen=True)
class Limits:
    """The reconciler's patience (settings)."""

    action_timeout_s: float
    max_action_attempts: int
    dead_after_s: float
    orphan_grace_s: float


# Repairs: one dataclass each, with the reason that goes on its FleetRepaired event.


@dataclass(frozen=True)
class RollBackAction:
    action: ActionOnRecord
    reason: str


@dataclass(frozen=True)
class MarkUnhealthy:
    server_id: str


@dataclass(frozen=True)
class MarkHealthy:
    server_id: str


@dataclass(frozen=True)
class ServerGone:
    """A recorded server whose process is gone (or never answers): release it, replace what it served."""

    server: ServerOnRecord
    reason: str


@dataclass(frozen=True)
class FinishStop:
    """A server left `starting` or `stopping` by an action no longer in progress, or a reclaimed spot server."""

    server: ServerOnRecord
    reason: str
    kind: str = "server_stopped"


@dataclass(frozen=True)
class ReplaceDraining:
    """A spot server under notice whose replacement is not done: (re)plan it (idempotent by action id)."""

    server: ServerOnRecord


def replacement_prefix(server_id: str) -> str:
    """The action ids that replace a server's instances (gone, reclaimed or moved) start with this."""
    return f"replace-{server_id}-"


ATTEMPT_MARK = "~"  # a replacement tried again: `<id>~2`, `<id>~3` (never in a model or server id)


def attempt_id(base_id: str, attempt: int) -> str:
    """The action id of a replacement's `attempt` (1 is the base id itself)."""
    return base_id if attempt <= 1 else f"{base_id}{ATTEMPT_MARK}{attempt}"


def attempt_number(action_id: str) -> tuple[str, int]:
    """(base id, attempt) of a replacement action id."""
    base, mark, n = action_id.rpartition(ATTEMPT_MARK)
    return (base, int(n)) if mark and n.isdigit() else (action_id, 1)


def latest_attempts(states: Mapping[str, str]) -> dict[str, str]:
    """Replacement action id -> state, keeping only each replacement's latest attempt (by base id)."""
    latest: dict[str, tuple[int, str]] = {}
    for action_id, state in states.items():
        base, n = attempt_number(action_id)
        if base not in latest or n > latest[base][0]:
            latest[base] = (n, state)
    return {base: state for base, (_, state) in latest.items()}


def next_attempt(base_id: str, states: Mapping[str, str], max_attempts: int) -> str | None:
    """The id to plan the replacement under now: the first attempt, or the next after a failed one.

    None while an attempt is in progress or done, or once `max_attempts` have failed: a spot
    server's replacement that found no GPUs is tried again after the cluster autoscaler grew the
    pool (on-demand), but not for ever.
    """
    if not states:
        return attempt_id(base_id, 1)
    n = max(attempt_number(a)[1] for a in states)
    if latest_attempts(states)[base_id] != "failed" or n >= max_attempts:
        return None
    return attempt_id(base_id, n + 1)


@dataclass(frozen=True)
class Undrain:
    """A server moved to a cheaper placement whose replacement failed: it serves on as before."""

    server: ServerOnRecord
    reason: str


@dataclass(frozen=True)
class StopOrphan:
    server_id: str
    reason: str


@dataclass(frozen=True)
class ReloadPlacement:
    """On record as served, not loaded on the server: load it again."""

    server_id: str
    placement: PlacementOnRecord
    reason: str


@dataclass(frozen=True)
class ConfirmPlacement:
    """Left `loading` by an action that ended, yet loaded: it serves, so say so."""

    server_id: str
    region: str
    placement: PlacementOnRecord
    reason: str


@dataclass(frozen=True)
class DropPlacement:
    """Left `unloading` by an action that ended: take it off and forget it."""

    server_id: str
    region: str
    placement: PlacementOnRecord
    reason: str


@dataclass(frozen=True)
class UnloadStray:
    """Loaded on the server, on no record: unload it (it takes memory and serves nobody)."""

    server_id: str
    triton_model: str
    reason: str


Repair = (
    RollBackAction
    | MarkUnhealthy
    | MarkHealthy
    | ServerGone
    | FinishStop
    | ReplaceDraining
    | Undrain
    | StopOrphan
    | ReloadPlacement
    | ConfirmPlacement
    | DropPlacement
    | UnloadStray
)


@dataclass
class OrphanClock:
    """When each unowned server process was first seen (the reconciler's memory between rounds)."""

    first_seen: dict[str, datetime] = field(default_factory=dict)

    def overdue(self, server_ids: Iterable[str], now: datetime, grace_s: float) -> list[str]:
        """Remember newly seen ids, forget ids no longer unowned; those unowned for `grace_s` or more."""
        current = set(server_ids)
        self.first_seen = {sid: self.first_seen.get(sid, now) for sid in current}
        return sorted(sid for sid, seen in self.first_seen.items() if now - seen >= timedelta(seconds=grace_s))


def stuck_actions(actions: Sequence[ActionOnRecord], now: datetime, limits: Limits) -> list[RollBackAction]:
    """Actions no worker holds that ran out of time or attempts: roll them back."""
    stuck = []
    for action in actions:
        if action.leased:
            continue  # a worker is on it and renewing its lease; its steps have their own timeouts
        age = (now - action.created_at).total_seconds()
        if action.attempts >= limits.max_action_attempts:
            reason = f"{action.attempts} workers took it on and none finished it"
        elif age >= limits.action_timeout_s:
            reason = f"in progress for {age:.0f} s (limit {limits.action_timeout_s:.0f} s)"
        else:
            continue
        stuck.append(RollBackAction(action, reason))
    return stuck


def reconcile_servers(
    recorded: Sequence[ServerOnRecord],
    observed: Mapping[str, ServerObserved],
    now: datetime,
    limits: Limits,
) -> list[Repair]:
    """Repairs for the recorded servers not owned by an action in progress, from what exists."""
    repairs: list[Repair] = []
    for server in recorded:
        if server.busy:
            continue
        seen = observed.get(server.server_id)
        if server.state == "draining":
            if (repair := _draining(server, now)) is not None:
                repairs.append(repair)
            continue
        if server.state != "running":
            # No action in progress owns it, so nobody will finish its start or stop.
            repairs.append(FinishStop(server, f"left {server.state} by an action that is no longer in progress"))
            continue
        healthy = seen is not None and seen.alive and seen.ready
        if not healthy:
            repairs.extend(_unhealthy(server, seen, now, limits))
            continue
        if server.unhealthy_since is not None:
            repairs.append(MarkHealthy(server.server_id))
        if seen is not None and seen.loaded is not None:
            repairs.extend(_placement_drift(server, seen.loaded))
    return repairs


def _draining(server: ServerOnRecord, now: datetime) -> Repair | None:
    """Make before break: stop a draining server once its replacement serves (or when the cloud reclaims it).

    A spot server under notice (`reclaim_at`) is replaced by planning, again each round until it
    is; a server moved to a cheaper placement (no `reclaim_at`) had its replacement written with
    the move, and serves on if that fails.
    """
    spot = server.reclaim_at is not None
    if server.reclaim_at is not None and now >= server.reclaim_at:
        return FinishStop(server, f"spot reclaimed at {server.reclaim_at.isoformat()}", "spot_reclaimed")
    if server.replaced:
        reason = "replaced before its spot reclaim" if spot else "moved: its replacement serves"
        return FinishStop(server, reason, "spot_reclaimed" if spot else "moved")
    if spot:
        return ReplaceDraining(server)
    if server.replacement_failed:
        return Undrain(server, "its move failed: it serves on where it is")
    return None


def _unhealthy(server: ServerOnRecord, seen: ServerObserved | None, now: datetime, limits: Limits) -> list[Repair]:
    what = "no process" if seen is None or not seen.alive else "not answering as ready"
    if server.unhealthy_since is None:
        if limits.dead_after_s <= 0:
            return [ServerGone(server, f"{what}")]
        return [MarkUnhealthy(server.server_id)]
    for_s = (now - server.unhealthy_since).total_seconds()
    if for_s >= limits.dead_after_s:
        return [ServerGone(server, f"{what} for {for_s:.0f} s (limit {limits.dead_after_s:.0f} s)")]
    return []


def _placement_drift(server: ServerOnRecord, loaded: frozenset[str]) -> list[Repair]:
    repairs: list[Repair] = []
    for p in server.placements:
        if p.state == "ready" and p.triton_model not in loaded:
            repairs.append(
                ReloadPlacement(server.server_id, p, f"{p.triton_model} is not loaded on {server.server_id}")
            )
        elif p.state == "loading":
            if p.triton_model in loaded:
                reason = f"{p.triton_model} was left loading by an ended action, and is loaded"
                repairs.append(ConfirmPlacement(server.server_id, server.region, p, reason))
            else:
                reason = f"{p.triton_model} was left loading by an ended action, and is not loaded"
                repairs.append(ReloadPlacement(server.server_id, p, reason))
        elif p.state == "unloading":
            reason = f"{p.triton_model} was left unloading by an ended action"
            repairs.append(DropPlacement(server.server_id, server.region, p, reason))
    claimed = {p.triton_model for p in server.placements}
    claimed |= {stream_variant(name) for name in claimed}  # a model's streaming variant is loaded with it
    for name in sorted(loaded - claimed):
        repairs.append(UnloadStray(server.server_id, name, f"{name} is loaded on {server.server_id} with no placement"))
    return repairs


def unowned(observed: Iterable[ServerObserved], recorded: Iterable[ServerOnRecord]) -> list[str]:
    """Server ids the provisioner runs (alive) that no live row owns."""
    owned = {s.server_id for s in recorded}
    return sorted(s.server_id for s in observed if s.alive and s.server_id not in owned)


@dataclass(frozen=True)
class PoolAccount:
    """One pool's counters and how many GPU rows it has in each state."""

    region: str
    gpu_type: str
    total: int
    available: int
    reserved: int
    rows: Mapping[str, int]  # state (free, reserved, allocated) -> GPU rows


def conservation_violations(pools: Iterable[PoolAccount]) -> list[str]:
    """Pools whose books do not balance: free + allocated + reserved must equal the total, rows and counters alike."""
    problems = []
    for p in pools:
        free, reserved, allocated = (p.rows.get(state, 0) for state in ("free", "reserved", "allocated"))
        counted_allocated = p.total - p.available - p.reserved
        name = f"{p.region}/{p.gpu_type}"
        if p.available < 0 or p.reserved < 0 or counted_allocated < 0:
            problems.append(
                f"{name}: counters out of range (total {p.total}, free {p.available}, reserved {p.reserved})"
            )
        if free + reserved + allocated != p.total:
            problems.append(
                f"{name}: {free} free + {reserved} reserved + {allocated} allocated rows != total {p.total}"
            )
        if (free, reserved, allocated) != (p.available, p.reserved, counted_allocated):
            problems.append(
                f"{name}: rows say {free}/{reserved}/{allocated} free/reserved/allocated,"
                f" counters {p.available}/{p.reserved}/{counted_allocated}"
            )
    return problems


@dataclass(frozen=True)
class RegisteredServer:
    """A server someone else announced on the allocations topic, and since when it has not answered."""

    server_id: str
    endpoint: str
    region: str
    unanswered_since: datetime | None


@dataclass(frozen=True)
class Retirement:
    """What to do with registered servers after a round of asking them: retire, start or stop the clock."""

    retire: tuple[RegisteredServer, ...] = ()
    unanswered: tuple[str, ...] = ()  # start their clock
    answered: tuple[str, ...] = ()  # clear their clock


def retirements(
    registered: Sequence[RegisteredServer], answering: Mapping[str, bool], now: datetime, retire_after_s: float
) -> Retirement:
    """Retire registered servers that have not answered for `retire_after_s`, whoever registered them."""
    retire, unanswered, answered = [], [], []
    for server in registered:
        ok = answering.get(server.server_id)
        if ok is None:
            continue  # not asked this round
        if ok:
            if server.unanswered_since is not None:
                answered.append(server.server_id)
        elif server.unanswered_since is None:
            unanswered.append(server.server_id)
        elif (now - server.unanswered_since).total_seconds() >= retire_after_s:
            retire.append(server)
    return Retirement(tuple(retire), tuple(unanswered), tuple(answered))


def spot_reclaims(
    server_ids: Sequence[str], rate_per_hour: float, interval_s: float, draws: Sequence[float]
) -> list[str]:
    """The spot servers a market with `rate_per_hour` reclaims per server-hour takes in one `interval_s`.

    Reclaims are a Poisson process per server: P(reclaim within dt) = 1 - exp(-rate * dt).
    `draws` are uniform in [0, 1), one per server.
    """
    chance = 1.0 - math.exp(-rate_per_hour * interval_s / 3600.0)
    return [sid for sid, u in zip(server_ids, draws, strict=True) if u < chance]
