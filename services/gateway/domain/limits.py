"""Limits per tenant and per key: what a request reserves, what it settles to, and when to come back (pure).

One authoritative count lives in PostgreSQL (adapters/limits_tables.py): a row per subject
(a key or a tenant) and minute, raised in the statement that admits, a row per subject and month
for its spend (monthly budget, in nano-dollars: domain/budgets.py), and a lease per request in
flight. `Ledger` is the same rules over a dict, for the unit tests' fake and for reasoning.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from services.gateway.domain.budgets import month_of, seconds_to_next_month

WINDOW = timedelta(minutes=1)


@dataclass(frozen=True)
class Limits:
    """Requests per minute, tokens per minute, requests in flight, spend per month (nano-dollars); None: no limit."""

    rpm: int | None = None
    tpm: int | None = None
    concurrency: int | None = None
    monthly_budget: int | None = None


class Limit(StrEnum):
    """Which limit refused a request."""

    RPM = "requests per minute"
    TPM = "tokens per minute"
    CONCURRENCY = "concurrent requests"
    BUDGET = "monthly budget"


@dataclass(frozen=True)
class Subject:
    """Whose count a request raises: `key:<id>` or `tenant:<id>`, with its limits."""

    name: str
    limits: Limits


@dataclass(frozen=True)
class Claim:
    """One request's admission: its subjects, the tokens it reserves (and their worst-case cost), window and lease."""

    request_id: str
    subjects: tuple[Subject, ...]
    tokens: int
    window: datetime
    lease_until: datetime
    cost: int = 0  # nano-dollars: the reserved tokens at the model's price

    @property
    def month(self) -> datetime:
        """The budget period the claim counts in."""
        return month_of(self.window)


@dataclass(frozen=True)
class Refusal:
    """The limit a claim would break, and for whom."""

    subject: str
    limit: Limit
    allowed: int
    retry_after_s: int


@dataclass(frozen=True)
class Settlement:
    """What a finished request really cost: its tokens (and their cost) replace its reservation."""

    request_id: str
    subjects: tuple[str, ...]
    window: datetime
    reserved: int
    used: int
    reserved_cost: int = 0
    used_cost: int = 0
    budgeted: tuple[str, ...] = ()  # the subjects with a monthly budget (the ones whose spend row moves)


@dataclass(frozen=True)
class Raise:
    """What a batch of claims adds to one subject's minute, under the subject's limits."""

    subject: Subject
    window: datetime
    requests: int
    tokens: int


def raises(claims: Sequence[Claim]) -> list[Raise]:
    """The claims' increments summed per subject and minute, in lock order (subject, then minute)."""
    sums: dict[tuple[str, datetime], tuple[Subject, int, int]] = {}
    for claim in claims:
        for s in claim.subjects:
            _, n, tokens = sums.get((s.name, claim.window), (s, 0, 0))
            sums[(s.name, claim.window)] = (s, n + 1, tokens + claim.tokens)
    return [Raise(s, window, n, tokens) for (_, window), (s, n, tokens) in sorted(sums.items(), key=lambda i: i[0])]


def holds(claims: Sequence[Claim]) -> list[tuple[Subject, int]]:
    """Requests each concurrency-limited subject takes in flight, in lock order (subject)."""
    counts: dict[str, tuple[Subject, int]] = {}
    for claim in claims:
        for s in claim.subjects:
            if s.limits.concurrency is not None:
                counts[s.name] = (s, counts.get(s.name, (s, 0))[1] + 1)
    return [counts[name] for name in sorted(counts)]


def spends(claims: Sequence[Claim]) -> list[tuple[Subject, datetime, int]]:
    """What the claims add to each budgeted subject's month, in lock order (subject, then month)."""
    sums: dict[tuple[str, datetime], tuple[Subject, int]] = {}
    for claim in claims:
        for s in claim.subjects:
            if s.limits.monthly_budget is not None:
                _, cost = sums.get((s.name, claim.month), (s, 0))
                sums[(s.name, claim.month)] = (s, cost + claim.cost)
    return [(s, month, cost) for (_, month), (s, cost) in sorted(sums.items(), key=lambda i: i[0])]


def fits_fresh(
    batch_raises: Sequence[Raise],
    batch_holds: Sequence[tuple[Subject, int]],
    batch_spends: Sequence[tuple[Subject, datetime, int]] = (),
) -> bool:
    """Whether the batch alone fits every limit: what a subject's first row of a minute (or month) must satisfy."""
    if any(cost > (s.limits.monthly_budget or 0) for s, _, cost in batch_spends):
        return False
    for r in batch_raises:
        limits = r.subject.limits
        if (limits.rpm is not None and r.requests > limits.rpm) or (limits.tpm is not None and r.tokens > limits.tpm):
            return False
    return all(s.limits.concurrency is None or n <= s.limits.concurrency for s, n in batch_holds)


def window_of(now: datetime) -> datetime:
    """The minute `now` falls in."""
    return now.replace(second=0, microsecond=0)


def seconds_to_next_window(now: datetime) -> int:
    """Whole seconds until the next minute starts (at least 1): a throttled client's Retry-After."""
    return max(1, math.ceil((window_of(now) + WINDOW - now).total_seconds()))


def reservation(prompt_tokens: int, max_tokens: int) -> int:
    """Tokens held at admission: the prompt and every token the request may generate."""
    return prompt_tokens + max_tokens


def settled_tokens(reserved: int, prompt_tokens: int, tokens_in: int, tokens_out: int, answered: bool) -> int:
    """What a request counts once finished.

    Answered (ok, rejected or failed): what the router reports, and at least the prompt, so a
    failed request still counts. Unanswered (timed out): the whole reservation, since the model
    may still be generating.
    """
    if not answered:
        return reserved
    return max(tokens_in, prompt_tokens) + tokens_out


def too_large(subjects: tuple[Subject, ...], tokens: int, now: datetime) -> Refusal | None:
    """A claim no window could ever admit (more tokens than the TPM limit)."""
    for s in subjects:
        if s.limits.tpm is not None and tokens > s.limits.tpm:
            return Refusal(s.name, Limit.TPM, s.limits.tpm, seconds_to_next_window(now))
    return None


@dataclass
class Usage:
    """A subject's count in one window, and its requests in flight."""

    requests: int = 0
    tokens: int = 0


@dataclass
class Ledger:
    """The admission rules over in-memory counts: the SQL statements' semantics, for fakes and tests."""

    windows: dict[tuple[str, datetime], Usage] = field(default_factory=dict)
    inflight: dict[str, set[str]] = field(default_factory=dict)
    months: dict[tuple[str, datetime], int] = field(default_factory=dict)  # nano-dollars spent (or reserved)

    def check(self, claim: Claim, now: datetime) -> Refusal | None:
        """The first limit `claim` would break, or None."""
        for s in claim.subjects:
            usage = self.windows.get((s.name, claim.window), Usage())
            spent = self.months.get((s.name, claim.month), 0)
            busy = len(self.inflight.get(s.name, ()))
            if refusal := refusal_for(s, usage, busy, claim.tokens, now, spent, claim.cost):
                return refusal
        return None

    def admit(self, claim: Claim, now: datetime) -> Refusal | None:
        """Raise every subject's counts, or none of them and say which limit refused."""
        if refusal := self.check(claim, now):
            return refusal
        for s in claim.subjects:
            usage = self.windows.setdefault((s.name, claim.window), Usage())
            usage.requests += 1
            usage.tokens += claim.tokens
            if s.limits.concurrency is not None:
                self.inflight.setdefault(s.name, set()).add(claim.request_id)
            if s.limits.monthly_budget is not None:
                self.months[(s.name, claim.month)] = self.months.get((s.name, claim.month), 0) + claim.cost
        return None

    def settle(self, settlement: Settlement) -> None:
        """Replace the reservation by what was used, and end the request's lease."""
        for name in settlement.subjects:
            usage = self.windows.setdefault((name, settlement.window), Usage())
            usage.tokens += settlement.used - settlement.reserved
            self.inflight.get(name, set()).discard(settlement.request_id)
        month = month_of(settlement.window)
        for name in settlement.budgeted:
            change = settlement.used_cost - settlement.reserved_cost
            self.months[(name, month)] = self.months.get((name, month), 0) + change


def fallback_refusal(claim: Claim) -> Refusal:
    """A refusal whose limit could not be read back (the counts moved since): try again in a second."""
    first = claim.subjects[0]
    return Refusal(first.name, Limit.CONCURRENCY, first.limits.concurrency or 0, 1)


def refusal_for(
    s: Subject, usage: Usage, inflight: int, tokens: int, now: datetime, spent: int = 0, cost: int = 0
) -> Refusal | None:
    """The first of the subject's limits a claim of `tokens` (costing `cost`) would break.

    Given the subject's usage this minute, its requests in flight and its spend this month. The
    budget comes first: it is the one refusal that waiting a minute does not cure.
    """
    budget = s.limits.monthly_budget
    if budget is not None and spent + cost > budget:
        return Refusal(s.name, Limit.BUDGET, budget, seconds_to_next_month(now))
    wait = seconds_to_next_window(now)
    if s.limits.rpm is not None and usage.requests + 1 > s.limits.rpm:
        return Refusal(s.name, Limit.RPM, s.limits.rpm, wait)
    if s.limits.tpm is not None and usage.tokens + tokens > s.limits.tpm:
        return Refusal(s.name, Limit.TPM, s.limits.tpm, wait)
    if s.limits.concurrency is not None and inflight + 1 > s.limits.concurrency:
        return Refusal(s.name, Limit.CONCURRENCY, s.limits.concurrency, 1)
    return None
