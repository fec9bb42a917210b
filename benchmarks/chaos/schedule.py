"""The fault schedule: a pure function of a seed and a profile (default or --quick).

Outages (kills, restarts, a second router, Kafka, PostgreSQL and Triton down) take turns: each
starts after the previous one is over plus a random gap, so every failure is seen on its own.
Poison bundles and the overload burst land at random moments between them (never while Kafka is
planned down: nothing can be sent then).

The control path has a track of its own (allocator SIGKILLs in four phases, a second allocator,
poison on its topics), run beside the request path's outages: its faults take turns among
themselves and never overlap a planned Kafka or PostgreSQL outage (those stop both paths), so each
is seen on its own too. The PostgreSQL outage is shared: a scale-up is put in flight just before
it. Its poison comes last on the track, so a consumer it blocks spoils no other control fault.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from enum import StrEnum


class FaultKind(StrEnum):
    """What the harness does to the platform."""

    ROUTER_KILL = "router_kill"  # SIGKILL the router, start it again
    ROUTER_JOIN = "router_join"  # a second router joins the group, leaves on SIGTERM after duration_s
    KAFKA_DOWN = "kafka_down"  # the broker stopped (detail: SIGKILL or SIGTERM) for duration_s
    POSTGRES_DOWN = "postgres_down"  # PostgreSQL stopped for duration_s; the router restarts at offset_s
    TRITON_KILL = "triton_kill"  # SIGKILL the Triton server, start it again
    TRITON_STOP = "triton_stop"  # SIGSTOP the Triton server for duration_s, then SIGCONT
    POISON = "poison"  # one bundle of poison records
    OVERLOAD = "overload"  # `count` requests across `models` model ids with large prompts
    # The control path (allocator): its own track.
    ALLOCATOR_KILL = "allocator_kill"  # SIGKILL the allocator in phase `detail` of an action, start it again
    ALLOCATOR_JOIN = "allocator_join"  # a second allocator for duration_s while the model scales, then SIGTERM
    CONTROL_POISON = "control_poison"  # junk and a wrong schema on each control topic, then a probe action


class KillPhase(StrEnum):
    """Where in an action the allocator is SIGKILLed (the detail of an ALLOCATOR_KILL)."""

    BEFORE_SPAWN = "before_spawn"  # action recorded, server row starting, no Triton process yet
    DURING_START = "during_start"  # the Triton process exists, the row still says starting
    AFTER_RUNNING = "after_running"  # right after the commit that marks the server running
    DURING_UNLOAD = "during_unload"  # an unload under way (placement unloading / server stopping)


INSTANT = frozenset({FaultKind.POISON, FaultKind.OVERLOAD})
CONTROL = frozenset({FaultKind.ALLOCATOR_KILL, FaultKind.ALLOCATOR_JOIN, FaultKind.CONTROL_POISON})
EXCLUSIVE = frozenset({FaultKind.KAFKA_DOWN, FaultKind.POSTGRES_DOWN})  # no control fault overlaps these


@dataclass(frozen=True)
class Fault:
    """One planned fault: when (seconds into the fault phase), what, for how long."""

    kind: FaultKind
    at_s: float
    duration_s: float = 0.0
    detail: str = ""
    offset_s: float = 0.0
    count: int = 0  # overload: requests; allocator kill and join: the scale-up's target instances
    models: int = 0


@dataclass(frozen=True)
class Profile:
    """How many of each fault, how long each lasts, and the phase's shape."""

    router_kills: int
    router_joins: tuple[float, ...]
    kafka_downs: tuple[float, ...]
    postgres_downs: tuple[float, ...]
    triton_kills: int
    triton_stops: tuple[float, ...]
    poisons: int
    overloads: int
    overload_count: int
    overload_models: int = 200
    lead_in_s: float = 20.0
    tail_s: float = 20.0
    gap_s: tuple[float, float] = (4.0, 10.0)
    # The control path: allocator kills (one per phase listed), second allocators, poison rounds.
    allocator_kills: tuple[KillPhase, ...] = tuple(KillPhase)
    allocator_joins: tuple[float, ...] = (30.0,)
    control_poisons: int = 1
    control_gap_s: tuple[float, float] = (3.0, 6.0)
    pg_prepare_s: float = 15.0  # at most this long (in the outage's allowance) to put a scale-up in flight
    settle_s: float = 60.0  # the control figures are read this long after the last fault
    stuck_after_s: float = 300.0  # an action in progress longer than this at the end is stuck
    # Expected time a fault takes beyond its duration (restarts, JVM start, model loads): placement only.
    allowance_s: dict[FaultKind, float] = field(
        default_factory=lambda: {
            FaultKind.ROUTER_KILL: 15.0,
            FaultKind.ROUTER_JOIN: 10.0,
            FaultKind.KAFKA_DOWN: 25.0,
            FaultKind.POSTGRES_DOWN: 15.0,  # with the control path's scale-up put in flight first
            FaultKind.TRITON_KILL: 25.0,
            FaultKind.TRITON_STOP: 5.0,
            FaultKind.ALLOCATOR_KILL: 25.0,  # set-up, the action, the kill, the restart (~9 s), its outcome
            FaultKind.ALLOCATOR_JOIN: 20.0,  # the second allocator's start (~9 s) and stop
            FaultKind.CONTROL_POISON: 15.0,  # the poison, then a probe action that must still be served
        }
    )


# The durations: Kafka down 5, 20 and 60 s, PostgreSQL 60 s, Triton stopped 90 s.
DEFAULT = Profile(
    router_kills=2,
    router_joins=(30.0, 30.0),
    kafka_downs=(5.0, 20.0, 60.0),
    postgres_downs=(60.0,),
    triton_kills=2,
    triton_stops=(90.0,),
    poisons=3,
    overloads=2,
    overload_count=2_000,
)
# --quick: every kind once (poison twice), durations scaled down, a smaller burst. Stuck actions
# count from 2 minutes (the run is too short for 5 to mean anything; the reconciler's action
# timeout is set to 90 s).
QUICK = Profile(
    router_kills=1,
    router_joins=(15.0,),
    kafka_downs=(3.0, 10.0),
    postgres_downs=(30.0,),
    triton_kills=1,
    triton_stops=(15.0,),
    poisons=2,
    overloads=1,
    overload_count=500,
    lead_in_s=15.0,
    tail_s=15.0,
    gap_s=(4.0, 8.0),
    allocator_joins=(10.0,),
    control_gap_s=(2.0, 4.0),
    stuck_after_s=120.0,
)


@dataclass(frozen=True)
class Schedule:
    """The faults in time order and the planned length of the fault phase."""

    seed: int
    faults: tuple[Fault, ...]
    phase_s: float


def _outages(profile: Profile, rng: random.Random) -> list[Fault]:
    """The outages of a profile, unplaced (at_s 0), in a seeded random order."""
    found = [Fault(FaultKind.ROUTER_KILL, 0.0, detail="SIGKILL") for _ in range(profile.router_kills)]
    found += [Fault(FaultKind.ROUTER_JOIN, 0.0, duration_s=d, detail="SIGTERM") for d in profile.router_joins]
    for i, duration in enumerate(profile.kafka_downs):  # crash and clean stop take turns
        found.append(Fault(FaultKind.KAFKA_DOWN, 0.0, duration_s=duration, detail=("SIGKILL", "SIGTERM")[i % 2]))
    for duration in profile.postgres_downs:
        offset = round(rng.uniform(0.25, 0.6) * duration, 1)
        detail = "router SIGTERM; a scale-up in flight"
        found.append(Fault(FaultKind.POSTGRES_DOWN, 0.0, duration_s=duration, detail=detail, offset_s=offset))
    found += [Fault(FaultKind.TRITON_KILL, 0.0, detail="SIGKILL") for _ in range(profile.triton_kills)]
    found += [Fault(FaultKind.TRITON_STOP, 0.0, duration_s=d, detail="SIGSTOP") for d in profile.triton_stops]
    rng.shuffle(found)
    return found


def plan(seed: int, profile: Profile = DEFAULT) -> Schedule:
    """Place every fault of `profile` in time, reproducibly for a seed."""
    rng = random.Random(seed)
    placed: list[Fault] = []
    at = profile.lead_in_s
    down: list[tuple[float, float]] = []
    exclusive: list[tuple[float, float]] = []
    for fault in _outages(profile, rng):
        span = fault.duration_s + profile.allowance_s[fault.kind]
        placed.append(replace(fault, at_s=round(at, 1)))
        if fault.kind is FaultKind.KAFKA_DOWN:
            down.append((at, at + span))
        if fault.kind in EXCLUSIVE:
            exclusive.append((at, at + span))
        at += span + rng.uniform(*profile.gap_s)
    control = _control_track(profile, rng, exclusive)
    placed += control
    ends = [at] + [f.at_s + f.duration_s + profile.allowance_s[f.kind] for f in control]
    phase_s = round(max(ends) + profile.tail_s, 1)
    instants = [Fault(FaultKind.POISON, 0.0) for _ in range(profile.poisons)]
    instants += [
        Fault(FaultKind.OVERLOAD, 0.0, count=profile.overload_count, models=profile.overload_models)
        for _ in range(profile.overloads)
    ]
    for fault in instants:
        placed.append(replace(fault, at_s=_free_moment(rng, profile, phase_s, down)))
    return Schedule(seed=seed, faults=tuple(sorted(placed, key=lambda f: f.at_s)), phase_s=phase_s)


def _control_faults(profile: Profile, rng: random.Random) -> list[Fault]:
    """The control track's faults, unplaced, in a seeded order; the poison rounds always last."""
    found = [
        Fault(FaultKind.ALLOCATOR_KILL, 0.0, detail=phase.value, count=rng.choice((1, 2)))
        for phase in profile.allocator_kills
    ]
    found += [
        Fault(FaultKind.ALLOCATOR_JOIN, 0.0, duration_s=d, detail="SIGTERM", count=2) for d in profile.allocator_joins
    ]
    rng.shuffle(found)
    found += [Fault(FaultKind.CONTROL_POISON, 0.0, count=1) for _ in range(profile.control_poisons)]
    return found


def _control_track(profile: Profile, rng: random.Random, exclusive: list[tuple[float, float]]) -> list[Fault]:
    """Place the control faults one after another, outside every exclusive window (Kafka, PostgreSQL).

    At each moment the first fault (in the seeded order) that fits before the next window goes
    next; when none fits, the track jumps past the window. The poison rounds stay last.
    """
    windows = sorted((start - 2.0, end + 2.0) for start, end in exclusive)
    todo = _control_faults(profile, rng)
    placed: list[Fault] = []
    at = profile.lead_in_s
    while todo:
        inside = next((end for start, end in windows if start <= at < end), None)
        if inside is not None:
            at = inside
            continue
        room = min((start for start, _ in windows if start > at), default=float("inf")) - at
        poison_only = all(f.kind is FaultKind.CONTROL_POISON for f in todo)
        fits = [
            f
            for f in todo
            if f.duration_s + profile.allowance_s[f.kind] <= room
            and (f.kind is not FaultKind.CONTROL_POISON or poison_only)
        ]
        if not fits:
            at = min(end for start, end in windows if start > at)  # room is finite: a window follows
            continue
        fault = fits[0]
        todo.remove(fault)
        placed.append(replace(fault, at_s=round(at, 1)))
        at += fault.duration_s + profile.allowance_s[fault.kind] + rng.uniform(*profile.control_gap_s)
    return placed


def _free_moment(
    rng: random.Random, profile: Profile, phase_s: float, busy: list[tuple[float, float]], tries: int = 1000
) -> float:
    """A random moment in the phase outside `busy` (Kafka down) windows."""
    low, high = profile.lead_in_s, phase_s - profile.tail_s
    for _ in range(tries):
        at = round(rng.uniform(low, high), 1)
        if not any(start - 2.0 <= at <= end + 2.0 for start, end in busy):
            return at
    return round(low, 1)  # the lead-in never has Kafka down


def exclusive_windows(schedule: Schedule, profile: Profile) -> list[tuple[float, float]]:
    """Planned Kafka and PostgreSQL outages with their allowance (PostgreSQL's includes its scale-up)."""
    return [
        (f.at_s, f.at_s + f.duration_s + profile.allowance_s[f.kind]) for f in schedule.faults if f.kind in EXCLUSIVE
    ]


def kafka_windows(schedule: Schedule, profile: Profile) -> list[tuple[float, float]]:
    """Planned windows in which Kafka is down, with their allowance (for tests and the plan printout)."""
    allowance = profile.allowance_s[FaultKind.KAFKA_DOWN]
    return [(f.at_s, f.at_s + f.duration_s + allowance) for f in schedule.faults if f.kind is FaultKind.KAFKA_DOWN]
