"""Counting the control path's figures from what was observed (pure): leaks, stuck actions, GPU
conservation, duplicate servers, and the control part of the verdict.

A server is named by its id in the allocator's rows, and a Triton process by the name it was
started under; both are compared in `triton_key` form (what the local launcher puts in the
process's shared-memory prefix: every character outside [A-Za-z0-9] becomes "_").
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

LIVE_SERVER_STATES = frozenset({"starting", "running", "stopping"})
ACTIVE_ACTION_STATES = frozenset({"in_progress"})
GPU_STATES = ("free", "reserved", "allocated")
NO_ROW = "(no row)"  # the owner of a process whose server id no row has


def triton_key(name: str) -> str:
    """A server id as a local Triton process carries it (deploy.local.triton's shared-memory prefix)."""
    return re.sub(r"[^A-Za-z0-9]", "_", name)


@dataclass(frozen=True)
class ServerRow:
    """allocator.server, the columns counted here."""

    server_id: str
    state: str
    action_id: str | None = None


@dataclass(frozen=True)
class ActionRow:
    """allocator.scaling_action: its state and age (seconds since it was recorded, by the database clock)."""

    action_id: str
    state: str
    age_s: float


@dataclass(frozen=True)
class PoolRow:
    """allocator.gpu_pool's counters."""

    region: str
    gpu_type: str
    total: int
    available: int
    reserved: int


@dataclass(frozen=True)
class GpuCount:
    """allocator.gpu rows grouped by pool, state and server (server_id None: not a server's)."""

    region: str
    gpu_type: str
    state: str
    server_id: str | None
    count: int


@dataclass(frozen=True)
class Snapshot:
    """The allocator's tables, read in one transaction."""

    servers: tuple[ServerRow, ...] = ()
    actions: tuple[ActionRow, ...] = ()
    pools: tuple[PoolRow, ...] = ()
    gpus: tuple[GpuCount, ...] = ()


def live_keys(servers: Iterable[ServerRow]) -> set[str]:
    """Keys of the servers whose rows say they exist (starting, running or stopping)."""
    return {triton_key(s.server_id) for s in servers if s.state in LIVE_SERVER_STATES}


@dataclass(frozen=True)
class Leaks:
    """Processes no live row owns, and running rows without a process."""

    orphans: tuple[str, ...]
    dead_rows: tuple[str, ...]

    @property
    def count(self) -> int:
        """The `leaked_servers` figure."""
        return len(self.orphans) + len(self.dead_rows)


def leaked_servers(
    processes: Mapping[int, str], servers: Iterable[ServerRow], actions: Iterable[ActionRow] = ()
) -> Leaks:
    """Triton processes (pid -> key) no starting/running/stopping row owns, plus rows whose process is gone:
    running ones, and starting or stopping ones that no action in progress is working on (a row left
    half-way, holding its GPUs, after its action was closed)."""
    rows = list(servers)
    live = live_keys(rows)
    alive = set(processes.values())
    working = {a.action_id for a in actions if a.state in ACTIVE_ACTION_STATES}
    orphans = sorted(f"{key} (pid {pid})" for pid, key in processes.items() if key not in live)
    dead = sorted(
        f"{s.server_id} ({s.state})"
        for s in rows
        if triton_key(s.server_id) not in alive
        and (s.state == "running" or (s.state in LIVE_SERVER_STATES and s.action_id not in working))
    )
    return Leaks(tuple(orphans), tuple(dead))


def stuck_actions(actions: Iterable[ActionRow], older_than_s: float) -> list[str]:
    """Actions still in progress after `older_than_s`."""
    return sorted(a.action_id for a in actions if a.state in ACTIVE_ACTION_STATES and a.age_s > older_than_s)


def unfinished_actions(published: Iterable[str], actions: Iterable[ActionRow]) -> list[str]:
    """Actions the harness published that have no row, or whose row is still in progress."""
    states = {a.action_id: a.state for a in actions}
    return [a for a in published if states.get(a) is None or states[a] in ACTIVE_ACTION_STATES]


def gpu_conservation_violations(snapshot: Snapshot) -> list[str]:
    """Pools whose GPU rows by state disagree with their counters, and GPUs allocated to servers that are not live.

    Per pool: free rows == available, reserved rows == reserved, all rows == total (allocated rows
    with no server are GPUs the seed marks as used outside this allocator).
    """
    by_pool: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for g in snapshot.gpus:
        by_pool[(g.region, g.gpu_type)][g.state] += g.count
    found = []
    for pool in snapshot.pools:
        counts = by_pool.pop((pool.region, pool.gpu_type), Counter())
        rows = sum(counts.values())
        if (counts["free"], counts["reserved"], rows) != (pool.available, pool.reserved, pool.total):
            found.append(
                f"{pool.region}/{pool.gpu_type}: counters total {pool.total} available {pool.available} reserved "
                f"{pool.reserved}, rows {dict(sorted(counts.items()))}"
            )
    found += [f"{region}/{gpu_type}: GPU rows without a pool" for region, gpu_type in sorted(by_pool)]
    live = {s.server_id for s in snapshot.servers if s.state in LIVE_SERVER_STATES}
    for g in snapshot.gpus:
        if g.server_id is not None and g.state == "allocated" and g.server_id not in live:
            found += [f"{g.region}/{g.gpu_type}: GPU allocated to {g.server_id}, which is not live"] * g.count
        elif g.server_id is not None and g.state != "allocated":
            found += [f"{g.region}/{g.gpu_type}: {g.state} GPU still names {g.server_id}"] * g.count
    return found


@dataclass
class Duplicates:
    """Per action, the most Triton processes seen at once beyond the servers its rows planned."""

    owners: dict[str, str] = field(default_factory=dict)  # server key -> the action that created the row
    worst: dict[str, int] = field(default_factory=dict)  # action -> most extra processes in one sample
    examples: list[str] = field(default_factory=list)

    def own(self, servers: Iterable[ServerRow]) -> None:
        """Learn which action created each server (the first action seen on its row; later ones stop it)."""
        for s in servers:
            self.owners.setdefault(triton_key(s.server_id), s.action_id or NO_ROW)

    def sample(self, processes: Mapping[int, str], at_s: float = 0.0) -> None:
        """Count one look at the processes (taken before the rows that `own` was last given)."""
        for action, extra in extra_processes(processes, self.owners).items():
            if extra > self.worst.get(action, 0):
                self.worst[action] = extra
                if len(self.examples) < 5:
                    keys = sorted(k for k in processes.values() if self.owners.get(k, NO_ROW) == action)
                    self.examples.append(f"{at_s:.0f}s {action}: {extra} extra of {keys}")

    @property
    def figure(self) -> int:
        """The `duplicate_servers_per_action` figure."""
        return max(self.worst.values(), default=0)


def extra_processes(processes: Mapping[int, str], owners: Mapping[str, str]) -> dict[str, int]:
    """Per action: processes beyond one per server id it created; every process of an unknown id counts."""
    per_key = Counter(processes.values())
    extra: Counter[str] = Counter()
    for key, n in per_key.items():
        owner = owners.get(key)
        if owner is None:
            extra[NO_ROW] += n
        elif n > 1:
            extra[owner] += n - 1
    return dict(extra)


@dataclass(frozen=True)
class ControlFigures:
    """The control path's figures at the end of the run."""

    leaked_servers: int
    stuck_actions: int
    gpu_conservation_violations: int
    duplicate_servers_per_action: int
    unfinished_actions: int
    poison_sent: int
    poison_deadlettered: int
    details: dict[str, object] = field(default_factory=dict)


def count_control(
    processes: Mapping[int, str],
    snapshot: Snapshot,
    duplicates: Duplicates,
    published: Sequence[str],
    stuck_after_s: float,
    poison: Sequence[tuple[str, int, int]],
    dead_letters: Iterable[tuple[str, int, int]],
) -> ControlFigures:
    """Every control figure from the final look (processes, then the tables) and what was seen on the way."""
    leaks = leaked_servers(processes, snapshot.servers, snapshot.actions)
    stuck = stuck_actions(snapshot.actions, stuck_after_s)
    violations = gpu_conservation_violations(snapshot)
    unfinished = unfinished_actions(published, snapshot.actions)
    lettered = set(dead_letters)
    states = Counter(a.state for a in snapshot.actions if a.action_id in set(published))
    others = lettered - set(poison)  # records of the control topics dead-lettered that were no poison
    return ControlFigures(
        leaked_servers=leaks.count,
        stuck_actions=len(stuck),
        gpu_conservation_violations=len(violations),
        duplicate_servers_per_action=duplicates.figure,
        unfinished_actions=len(unfinished),
        poison_sent=len(poison),
        poison_deadlettered=sum(p in lettered for p in poison),
        details={
            "leaked_processes": list(leaks.orphans[:5]),
            "leaked_rows": list(leaks.dead_rows[:5]),
            "stuck": stuck[:5],
            "gpu_violations": violations[:5],
            "duplicates": duplicates.examples,
            "unfinished": unfinished[:5],
            "action_states": dict(states),
            "actions_deadlettered": len(others),
            "server_states": dict(Counter(s.state for s in snapshot.servers)),
        },
    )


def control_passed(figures: ControlFigures) -> bool:
    """The control path's verdict: no leak, no stuck action, GPUs conserved, no duplicate server,
    every action the harness asked for answered, every poison record parked."""
    return (
        figures.leaked_servers
        == figures.stuck_actions
        == figures.gpu_conservation_violations
        == figures.duplicate_servers_per_action
        == figures.unfinished_actions
        == 0
        and figures.poison_deadlettered == figures.poison_sent
    )
