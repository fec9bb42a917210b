"""Counting from recorded data (pure): results per request id, poison outcomes, stalls, the verdict."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

STEADY = "steady"
OVERLOAD = "overload"
REGULAR_KINDS = frozenset({STEADY, OVERLOAD})


@dataclass(frozen=True)
class Sent:
    """A record the harness wrote to the request topic (acknowledged, or answered although unacknowledged)."""

    request_id: str
    kind: str  # "steady", "overload" or a poison kind
    answerable: bool = True  # False: no request id can be read (it must be dead-lettered)
    has_deadline: bool = False
    partition: int = -1
    offset: int = -1


@dataclass(frozen=True)
class Result:
    """One result read back, from whichever topic it arrived on."""

    request_id: str
    status: str
    topic: str
    reason: str = ""


@dataclass(frozen=True)
class Sample:
    """Once a second: the router group's committed offsets (sum; None: unreadable) and results owed."""

    t: float
    committed: int | None
    pending: int


@dataclass(frozen=True)
class Counts:
    """What the results say about the requests sent."""

    sent: int
    missing: int
    duplicated: int
    failed: int
    statuses: dict[str, int]
    poison_sent: int
    poison_answerable: int
    poison_answered: int
    poison_leaked: int
    unreadable_sent: int
    unreadable_deadlettered: int
    unexpected_results: int
    poison_outcomes: dict[str, dict[str, int]] = field(default_factory=dict)
    rejection_reasons: dict[str, int] = field(default_factory=dict)
    duplicated_by_kind: dict[str, int] = field(default_factory=dict)
    duplicate_examples: tuple[str, ...] = ()


def count_results(
    sent: Iterable[Sent],
    results: Iterable[Result],
    forbidden_topics: frozenset[str],
    dead_letters: Iterable[tuple[int, int]] = (),
) -> Counts:
    """Missing, duplicated and failed requests; what became of each poison record.

    A result on a forbidden topic does not answer its request (it is counted as leaked).
    `dead_letters` are (partition, offset) of request-topic records on the dead-letter topic.
    """
    by_id: dict[str, list[Result]] = {}
    for result in results:
        by_id.setdefault(result.request_id, []).append(result)
    records = list(sent)
    ids = {s.request_id for s in records}
    lettered = set(dead_letters)
    statuses: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    outcomes: dict[str, Counter[str]] = {}
    doubled: list[Sent] = []
    missing = duplicated = failed = leaked = answered = 0
    for record in records:
        if not record.answerable:
            continue
        got = by_id.get(record.request_id, [])
        allowed = [r for r in got if r.topic not in forbidden_topics]
        leaked += len(got) - len(allowed)
        if len(allowed) > 1:
            duplicated += 1
            doubled.append(record)
        regular = record.kind in REGULAR_KINDS
        if not allowed:
            missing += regular
            if not regular:
                outcomes.setdefault(record.kind, Counter())["none"] += 1
            continue
        first = allowed[0]
        if regular:
            statuses[first.status] += 1
            failed += first.status == "failed" and not record.has_deadline
            if first.status == "rejected":
                reasons[_reason_head(first.reason)] += 1
        else:
            answered += 1
            outcomes.setdefault(record.kind, Counter())[first.status] += 1
    poison = [s for s in records if s.kind not in REGULAR_KINDS]
    unreadable = [s for s in poison if not s.answerable]
    return Counts(
        sent=len(records),
        missing=missing,
        duplicated=duplicated,
        failed=failed,
        statuses=dict(statuses),
        poison_sent=len(poison),
        poison_answerable=len(poison) - len(unreadable),
        poison_answered=answered,
        poison_leaked=leaked,
        unreadable_sent=len(unreadable),
        unreadable_deadlettered=sum((s.partition, s.offset) in lettered for s in unreadable),
        unexpected_results=sum(len(rs) for rid, rs in by_id.items() if rid not in ids),
        poison_outcomes={kind: dict(c) for kind, c in sorted(outcomes.items())},
        rejection_reasons=dict(reasons.most_common(8)),
        duplicated_by_kind=dict(Counter(s.kind for s in doubled)),
        duplicate_examples=tuple(s.request_id for s in doubled[:5]),
    )


def _reason_head(reason: str) -> str:
    """The first clause of a reason, without the ids and numbers that make each one unique."""
    head = reason.split(";")[0].split(":")[0].strip()
    return "".join("#" if c.isdigit() else c for c in head)[:80] or "(none)"


@dataclass(frozen=True)
class Stalls:
    """Seconds without progress while results were owed, outside outages and their grace."""

    seconds: int
    watched_s: int
    windows: tuple[tuple[float, float], ...]


def count_stalls(samples: Sequence[Sample], outages: Sequence[tuple[float, float]], grace_s: float = 30.0) -> Stalls:
    """Sum the sample intervals in which committed offsets stood still while results were owed.

    An interval counts only when both samples read the offsets, results were owed at both ends,
    and it overlaps no outage window extended by `grace_s`.
    """
    excluded = [(start, end + grace_s) for start, end in outages]
    stalled = watched = 0.0
    windows: list[tuple[float, float]] = []
    for before, after in itertools.pairwise(samples):
        if before.committed is None or after.committed is None:
            continue
        if any(before.t < end and after.t > start for start, end in excluded):
            continue
        span = after.t - before.t
        watched += span
        if after.committed == before.committed and before.pending > 0 and after.pending > 0:
            stalled += span
            if windows and abs(windows[-1][1] - before.t) < 1e-9:
                windows[-1] = (windows[-1][0], after.t)
            else:
                windows.append((before.t, after.t))
    return Stalls(seconds=round(stalled), watched_s=round(watched), windows=tuple(windows))


def passed(counts: Counts, stalls: Stalls) -> bool:
    """The suite's verdict: nothing lost, doubled or failed, no stall, every poison record handled."""
    return (
        counts.missing == counts.duplicated == counts.failed == stalls.seconds == 0
        and counts.poison_answered == counts.poison_answerable
        and counts.poison_leaked == 0
        and counts.unreadable_deadlettered == counts.unreadable_sent
    )
