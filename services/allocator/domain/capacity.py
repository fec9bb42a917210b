"""Capacity changes: a pool's GPUs per pricing class, changed on an operator's request (pure rules).

The cost service asks for GPUs to add (positive) or release (negative) per pricing class. A
decrease met by an increase is a conversion (on-demand GPUs become spot or reserved); a decrease
left over releases GPUs; an increase left over buys new ones. The rules:

- **Into reserved** (a commitment bought): it covers whole live servers of the source class first,
  largest that fit first (a commitment is per instance, and a server keeps one class), so they are
  priced at the reserved rate from now on; the rest are free GPUs, which servers started later
  take first.
- **Into spot or on-demand**: free GPUs only. A running server keeps the class it was started with
  (moving it is a restart); servers started later take the new class.
- **Releases**: free GPUs only. GPUs a running server holds are never released.
- **Reserved GPUs are never given up**: a commitment runs its term.
- GPUs held back (state `reserved`, outside this allocator's use) are never touched.

All or nothing: a request that cannot be carried out whole is refused with the reason. The books
still balance afterwards: conversions change no count; a release takes free GPUs out of the pool
(total and available down), a purchase adds free ones (both up).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

CLASSES = ("on_demand", "spot", "reserved")
# Where a decrease goes first when it is converted: the commitment first (it reprices servers now).
INTO_ORDER = ("reserved", "spot", "on_demand")
# The order in which a new server takes free GPUs: the paid-for commitment first, then the cheapest.
TAKE_ORDER = ("reserved", "spot", "on_demand")


@dataclass(frozen=True)
class GpuOnRecord:
    """One GPU of the pool: its state (free, reserved = held back, allocated), holder and class."""

    gpu_id: str
    state: str
    pricing_class: str
    server_id: str | None = None


@dataclass(frozen=True)
class CapacityPlan:
    """What a request changes, or why it is refused."""

    refused: str | None = None
    convert: dict[str, str] = field(default_factory=dict)  # gpu id -> new class
    release: tuple[str, ...] = ()  # free GPU ids that leave the pool
    buy: dict[str, int] = field(default_factory=dict)  # new free GPUs per class
    repriced: dict[str, str] = field(default_factory=dict)  # server id -> its new class
    changes: dict[str, int] = field(default_factory=dict)  # net GPUs per class

    @property
    def applied(self) -> bool:
        """True when the plan changes the pool."""
        return self.refused is None


def gpus_by_class(gpus: Sequence[GpuOnRecord]) -> dict[str, int]:
    """The pool's GPUs per class, free or held by servers (not those held back)."""
    counts = dict.fromkeys(CLASSES, 0)
    for g in gpus:
        if g.state != "reserved":
            counts[g.pricing_class] = counts.get(g.pricing_class, 0) + 1
    return counts


def _refuse(reason: str) -> CapacityPlan:
    return CapacityPlan(refused=reason)


def plan_capacity_change(
    gpus: Sequence[GpuOnRecord], changes: Mapping[str, int], live_servers: frozenset[str] | set[str]
) -> CapacityPlan:
    """Plan the request over the pool's GPUs; `live_servers` are the servers still holding theirs."""
    unknown = sorted(set(changes) - set(CLASSES))
    if unknown:
        return _refuse(f"unknown pricing class {', '.join(unknown)}")
    if changes.get("reserved", 0) < 0:
        return _refuse(f"cannot give up {-changes['reserved']} reserved GPUs: a commitment runs its term")
    decrease = {c: -n for c, n in changes.items() if n < 0}
    increase = {c: n for c, n in changes.items() if n > 0}
    if not decrease and not increase:
        return _refuse("nothing to change")
    free = {c: sorted(g.gpu_id for g in gpus if g.state == "free" and g.pricing_class == c) for c in CLASSES}
    by_server: dict[str, list[GpuOnRecord]] = {}
    for g in gpus:
        if g.state == "allocated" and g.server_id is not None and g.server_id in live_servers:
            by_server.setdefault(g.server_id, []).append(g)
    held: dict[str, dict[str, list[str]]] = {c: {} for c in CLASSES}  # class -> server -> its GPU ids
    for server_id, mine in by_server.items():
        classes = {g.pricing_class for g in mine}
        if len(classes) == 1:  # a server of mixed classes is not repriced as one
            held[classes.pop()][server_id] = [g.gpu_id for g in mine]
    convert: dict[str, str] = {}
    repriced: dict[str, str] = {}
    for source in CLASSES:
        need = decrease.get(source, 0)
        for target in INTO_ORDER:
            n = min(need, increase.get(target, 0))
            if n <= 0:
                continue
            taken: list[str] = []
            if target == "reserved":  # a commitment covers whole running servers first
                servers = sorted(held[source].items(), key=lambda item: (-len(item[1]), item[0]))
                for server_id, ids in servers:
                    if len(taken) + len(ids) <= n:
                        taken += ids
                        repriced[server_id] = target
            spare = [i for i in free[source] if i not in convert]
            if len(spare) < n - len(taken):
                return _refuse(
                    f"converting {n} {source} GPUs to {target}: only {len(spare) + len(taken)} can change"
                    f" ({len(spare)} free{', and whole running servers' if target == 'reserved' else ''});"
                    " a running server keeps its class"
                )
            taken += spare[: n - len(taken)]
            convert |= dict.fromkeys(taken, target)
            need -= n
            increase[target] -= n
        decrease[source] = need
    release: list[str] = []
    for source, n in decrease.items():
        if n <= 0:
            continue
        spare = [i for i in free[source] if i not in convert]
        if len(spare) < n:
            return _refuse(
                f"releasing {n} {source} GPUs: only {len(spare)} are free;"
                " GPUs a running server holds are never released"
            )
        release += spare[:n]
    buy = {c: n for c, n in increase.items() if n > 0}
    net = {c: n for c, n in changes.items() if n}
    return CapacityPlan(None, convert, tuple(release), buy, repriced, net)


def classes_after(gpus: Sequence[GpuOnRecord], plan: CapacityPlan) -> dict[str, int]:
    """The pool's GPUs per class once the plan is carried out (not those held back)."""
    counts = gpus_by_class(gpus)
    if not plan.applied:
        return counts
    before = {g.gpu_id: g.pricing_class for g in gpus}
    for gpu_id, target in plan.convert.items():
        counts[before[gpu_id]] -= 1
        counts[target] += 1
    for gpu_id in plan.release:
        counts[before[gpu_id]] -= 1
    for c, n in plan.buy.items():
        counts[c] += n
    return counts


def describe(gpus: Sequence[GpuOnRecord], plan: CapacityPlan) -> dict[str, object]:
    """What the plan changed, for the audit: conversions, releases and purchases per class, servers repriced."""
    if not plan.applied:
        return {}
    before = {g.gpu_id: g.pricing_class for g in gpus}
    converted: dict[str, int] = {}
    for gpu_id, target in plan.convert.items():
        key = f"{before[gpu_id]}->{target}"
        converted[key] = converted.get(key, 0) + 1
    released: dict[str, int] = {}
    for gpu_id in plan.release:
        released[before[gpu_id]] = released.get(before[gpu_id], 0) + 1
    return {
        "converted": converted,
        "released": released,
        "bought": dict(plan.buy),
        "repriced": dict(sorted(plan.repriced.items())),
    }


def new_gpu_ids(region: str, gpu_type: str, request_id: str, buy: Mapping[str, int]) -> dict[str, list[str]]:
    """Ids of the GPUs a request buys, per class: derived from the request id, so a retry makes the same."""
    tag = hashlib.sha256(request_id.encode()).hexdigest()[:10]
    ids: dict[str, list[str]] = {}
    n = 0
    for c in CLASSES:
        for _ in range(buy.get(c, 0)):
            ids.setdefault(c, []).append(f"{region}/{gpu_type}/c{tag}-{n:04d}")
            n += 1
    return ids


def server_class(classes: Mapping[str, int]) -> str:
    """The class a new server is announced as: that of most of its GPUs (reserved, then spot, on a tie)."""
    return max(INTO_ORDER, key=lambda c: (classes.get(c, 0), -INTO_ORDER.index(c)))
