"""The limit rules: at the limit and not before, all or nothing across subjects, settling, property checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from services.gateway.domain.limits import (
    Claim,
    Ledger,
    Limit,
    Limits,
    Settlement,
    Subject,
    fits_fresh,
    holds,
    raises,
    reservation,
    seconds_to_next_window,
    settled_tokens,
    too_large,
    window_of,
)

NOW = datetime(2026, 12, 3, 10, 0, 30, tzinfo=UTC)


def claim(request_id: str, tokens: int, *subjects: Subject, now: datetime = NOW) -> Claim:
    return Claim(request_id, subjects, tokens, window_of(now), now + timedelta(minutes=1))


def test_windows_are_minutes_and_retry_after_points_at_the_next() -> None:
    assert window_of(NOW) == datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
    assert seconds_to_next_window(NOW) == 30
    assert seconds_to_next_window(NOW.replace(second=59, microsecond=900_000)) == 1


def test_tpm_admits_up_to_the_limit_exactly() -> None:
    ledger, key = Ledger(), Subject("key:a", Limits(tpm=100))
    assert all(ledger.admit(claim(f"r{i}", 20, key), NOW) is None for i in range(5))
    refusal = ledger.admit(claim("r5", 1, key), NOW)
    assert refusal is not None and refusal.limit is Limit.TPM and refusal.retry_after_s == 30


def test_a_refusal_changes_no_subject() -> None:
    ledger = Ledger()
    key, tenant = Subject("key:a", Limits(rpm=10)), Subject("tenant:t", Limits(rpm=1))
    assert ledger.admit(claim("r1", 5, key, tenant), NOW) is None
    refusal = ledger.admit(claim("r2", 5, key, tenant), NOW)
    assert refusal is not None and refusal.subject == "tenant:t" and refusal.limit is Limit.RPM
    assert ledger.windows[("key:a", window_of(NOW))].requests == 1


def test_settling_gives_back_what_was_reserved_and_not_used() -> None:
    ledger, key = Ledger(), Subject("key:a", Limits(tpm=100, concurrency=1))
    first = claim("r1", 90, key)
    assert ledger.admit(first, NOW) is None
    refusal = ledger.admit(claim("r2", 20, key), NOW)
    assert refusal is not None and refusal.limit is Limit.TPM
    ledger.settle(Settlement("r1", ("key:a",), first.window, 90, 30))
    assert ledger.admit(claim("r2", 70, key), NOW) is None  # 30 + 70 = 100


def test_concurrency_counts_requests_in_flight() -> None:
    ledger, key = Ledger(), Subject("key:a", Limits(concurrency=2))
    assert ledger.admit(claim("r1", 1, key), NOW) is None
    assert ledger.admit(claim("r2", 1, key), NOW) is None
    refusal = ledger.admit(claim("r3", 1, key), NOW)
    assert refusal is not None and refusal.limit is Limit.CONCURRENCY and refusal.retry_after_s == 1
    ledger.settle(Settlement("r1", ("key:a",), window_of(NOW), 1, 1))
    assert ledger.admit(claim("r3", 1, key), NOW) is None


def test_the_next_minute_starts_afresh() -> None:
    ledger, key = Ledger(), Subject("key:a", Limits(rpm=1))
    assert ledger.admit(claim("r1", 1, key), NOW) is None
    assert ledger.admit(claim("r2", 1, key), NOW) is not None
    later = NOW + timedelta(seconds=31)
    assert ledger.admit(claim("r3", 1, key, now=later), later) is None


def test_what_a_request_reserves_and_settles_to() -> None:
    assert reservation(10, 50) == 60
    assert settled_tokens(60, 10, 10, 50, answered=True) == 60
    assert settled_tokens(60, 10, 0, 0, answered=True) == 10  # a failed request still counts its prompt
    assert settled_tokens(60, 10, 0, 0, answered=False) == 60  # a timeout keeps the reservation


def test_a_request_larger_than_the_tpm_limit_can_never_fit() -> None:
    subjects = (Subject("key:a", Limits(tpm=50)),)
    refusal = too_large(subjects, 51, NOW)
    assert refusal is not None and refusal.limit is Limit.TPM
    assert too_large(subjects, 50, NOW) is None


@given(
    limit=st.integers(1, 500),
    sizes=st.lists(st.integers(1, 60), min_size=1, max_size=60),
)
def test_admitted_tokens_never_exceed_the_limit_and_refusals_are_only_at_it(limit: int, sizes: list[int]) -> None:
    ledger, key = Ledger(), Subject("key:a", Limits(tpm=limit))
    admitted = 0
    for i, size in enumerate(sizes):
        if ledger.admit(claim(f"r{i}", size, key), NOW) is None:
            admitted += size
        else:
            assert admitted + size > limit  # refused only when it would not fit
    assert admitted <= limit


def test_a_batch_sums_per_subject_and_minute_in_lock_order() -> None:
    key, tenant = Subject("key:b", Limits(concurrency=5)), Subject("tenant:a", Limits(rpm=10))
    later = NOW + timedelta(minutes=1)
    claims = [claim("r1", 5, key, tenant), claim("r2", 7, key, tenant), claim("r3", 1, key, now=later)]
    assert [(r.subject.name, r.window, r.requests, r.tokens) for r in raises(claims)] == [
        ("key:b", window_of(NOW), 2, 12),
        ("key:b", window_of(later), 1, 1),
        ("tenant:a", window_of(NOW), 2, 12),
    ]
    assert [(s.name, n) for s, n in holds(claims)] == [("key:b", 3)]
    assert fits_fresh(raises(claims), holds(claims))
    assert not fits_fresh(raises(claims * 6), holds(claims * 6))  # 12 requests of the tenant in one minute
