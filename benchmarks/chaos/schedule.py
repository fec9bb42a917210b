"""The fault schedule: a pure function of a seed and a profile (default or --quick).

Outages (kills, restarts, a second router, Kafka, PostgreSQL and Triton down) take turns: each
starts after the previous one is over plus a random gap, so every failure is seen on its own.
Poison bundles and the overload burst land at random moments between them (never while Kafka is
planned down: nothing can be sent then).
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


INSTANT = frozenset({FaultKind.POISON, FaultKind.OVERLOAD})


@dataclass(frozen=True)
class Fault:
    """One planned fault: when (seconds into the fault phase), what, for how long."""

    kind: FaultKind
    at_s: float
    duration_s: float = 0.0
    detail: str = ""
    offset_s: float = 0.0
    count: int = 0
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
    # Expected time a fault takes beyond its duration (restarts, JVM start, model loads): placement only.
    allowance_s: dict[FaultKind, float] = field(
        default_factory=lambda: {
            FaultKind.ROUTER_KILL: 15.0,
            FaultKind.ROUTER_JOIN: 10.0,
            FaultKind.KAFKA_DOWN: 25.0,
            FaultKind.POSTGRES_DOWN: 10.0,
            FaultKind.TRITON_KILL: 25.0,
            FaultKind.TRITON_STOP: 5.0,
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
# --quick: every kind once (poison twice), durations scaled down, a smaller burst.
QUICK = Profile(
    router_kills=1,
    router_joins=(15.0,),
    kafka_downs=(3.0, 10.0),
    postgres_downs=(15.0,),
    triton_kills=1,
    triton_stops=(15.0,),
    poisons=2,
    overloads=1,
    overload_count=500,
    lead_in_s=15.0,
    tail_s=15.0,
    gap_s=(4.0, 8.0),
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
        found.append(Fault(FaultKind.POSTGRES_DOWN, 0.0, duration_s=duration, detail="router SIGTERM", offset_s=offset))
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
    for fault in _outages(profile, rng):
        span = fault.duration_s + profile.allowance_s[fault.kind]
        placed.append(replace(fault, at_s=round(at, 1)))
        if fault.kind is FaultKind.KAFKA_DOWN:
            down.append((at, at + span))
        at += span + rng.uniform(*profile.gap_s)
    phase_s = round(at + profile.tail_s, 1)
    instants = [Fault(FaultKind.POISON, 0.0) for _ in range(profile.poisons)]
    instants += [
        Fault(FaultKind.OVERLOAD, 0.0, count=profile.overload_count, models=profile.overload_models)
        for _ in range(profile.overloads)
    ]
    for fault in instants:
        placed.append(replace(fault, at_s=_free_moment(rng, profile, phase_s, down)))
    return Schedule(seed=seed, faults=tuple(sorted(placed, key=lambda f: f.at_s)), phase_s=phase_s)


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


def kafka_windows(schedule: Schedule, profile: Profile) -> list[tuple[float, float]]:
    """Planned windows in which Kafka is down, with their allowance (for tests and the plan printout)."""
    allowance = profile.allowance_s[FaultKind.KAFKA_DOWN]
    return [(f.at_s, f.at_s + f.duration_s + allowance) for f in schedule.faults if f.kind is FaultKind.KAFKA_DOWN]
