"""Batch formation: limits, grouping, ordering, timer and deadline flushes; nothing lost or duplicated."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from services.router.domain.batching import Batcher, BatchLimits, BatchStrategy, group_key, limits_for
from services.router.domain.requests import Pending


def req(i: int, model: str = "m", max_tokens: int = 10, prompt: str = "p", **kw) -> Pending:
    return Pending(f"r{i}", model, prompt, max_tokens, arrived=kw.pop("arrived", 0.0), seq=i, **kw)


def batcher(size: int = 4, wait: float = 0.1, budget: int = 10_000, margin: float = 0.0) -> Batcher:
    return Batcher(lambda _m: BatchLimits(size, wait, budget), deadline_margin_s=margin)


def test_seed_strategies_have_the_issue_limits():
    assert limits_for(BatchStrategy.LATENCY_OPTIMIZED, 100) == BatchLimits(8, 0.05, 100)
    assert limits_for(BatchStrategy.THROUGHPUT_OPTIMIZED, 100) == BatchLimits(32, 0.2, 100)
    assert limits_for(BatchStrategy.COST_OPTIMIZED, 100) == BatchLimits(64, 0.5, 100)


def test_a_full_batch_closes_on_the_arrival_that_fills_it():
    b = batcher(size=3)
    assert b.add(req(1), 0.0) == [] and b.add(req(2), 0.0) == []
    [batch] = b.add(req(3), 0.01)
    assert [r.request_id for r in batch.requests] == ["r1", "r2", "r3"] and batch.reason == "full"
    assert b.depth("m") == 0 and b.next_due() is None


def test_groups_split_by_model_bucket_temperature_and_top_p():
    assert group_key(req(1, max_tokens=150)) == group_key(req(2, max_tokens=199))
    assert group_key(req(1, max_tokens=99)) != group_key(req(2, max_tokens=100))
    assert group_key(req(1, temperature=0.5)) != group_key(req(2))
    assert group_key(req(1, top_p=0.9)) != group_key(req(2))
    assert group_key(req(1, model="a")) != group_key(req(2, model="b"))


def test_rows_are_ordered_by_priority_then_arrival():
    b = batcher(size=4)
    for i, priority in enumerate([0, 5, 0, 9]):
        closed = b.add(req(i, priority=priority), 0.0)
    assert [r.request_id for r in closed[0].requests] == ["r3", "r1", "r0", "r2"]


def test_the_timer_closes_a_batch_without_another_arrival():
    b = batcher(size=8, wait=0.05)
    b.add(req(1), 1.0)
    b.add(req(2), 1.03)
    assert b.next_due() == 1.05
    assert b.due(1.049) == []
    [batch] = b.due(1.05)
    assert batch.reason == "timer" and len(batch.requests) == 2


def test_the_token_budget_closes_the_batch_before_it_would_be_exceeded():
    b = batcher(size=8, budget=100)
    assert b.add(req(1, max_tokens=40), 0.0) == []  # 41 tokens
    assert b.add(req(2, max_tokens=40), 0.0) == []  # 82
    [batch] = b.add(req(3, max_tokens=40), 0.0)  # would be 123
    assert batch.reason == "tokens" and [r.request_id for r in batch.requests] == ["r1", "r2"]
    assert b.depth("m") == 1


def test_a_deadline_closes_the_batch_early():
    b = batcher(size=8, wait=0.5, margin=0.02)
    b.add(req(1), 0.0)
    b.add(req(2, deadline=0.1), 0.01)
    assert b.next_due() == 0.1 - 0.02
    [batch] = b.due(0.08)
    assert batch.reason == "deadline" and len(batch.requests) == 2


def test_drain_closes_everything():
    b = batcher()
    b.add(req(1, model="a"), 0.0)
    b.add(req(2, model="b"), 0.0)
    assert sorted(batch.model_id for batch in b.drain(0.0)) == ["a", "b"]
    assert b.next_due() is None


arrivals = st.lists(
    st.tuples(
        st.sampled_from(["a", "b"]),
        st.integers(1, 300),
        st.sampled_from([0.0, 0.7]),
        st.integers(0, 9),
        st.floats(0, 0.3),
        st.text(max_size=40),
    ),
    max_size=120,
)


@settings(max_examples=150, deadline=None)
@given(arrivals, st.integers(1, 10), st.floats(0.01, 0.2), st.integers(50, 1000))
def test_every_request_leaves_in_exactly_one_batch_within_every_limit(items, size, wait, budget):
    b = batcher(size=size, wait=wait, budget=budget)
    now, batches, added = 0.0, [], []
    for i, (model, max_tokens, temperature, priority, gap, prompt) in enumerate(items):
        now += gap
        batches += b.due(now)
        request = req(i, model, max_tokens, prompt, temperature=temperature, priority=priority, arrived=now)
        added.append(request.request_id)
        batches += b.add(request, now)
        # Timer invariant: after a due() at `now`, nothing open is older than its wait.
        due = b.next_due()
        assert due is None or due > now - 1e-9 or b.due(now)
    batches += b.drain(now)
    out = [r.request_id for batch in batches for r in batch.requests]
    assert sorted(out) == sorted(added) and len(out) == len(set(out))
    for batch in batches:
        assert 1 <= len(batch.requests) <= size
        assert len({group_key(r) for r in batch.requests}) == 1
        if len(batch.requests) > 1:
            assert sum(r.tokens for r in batch.requests) <= budget
        keys = [(-r.priority, r.seq) for r in batch.requests]
        assert keys == sorted(keys)
        if batch.reason == "timer":
            assert batch.closed_at - min(r.arrived for r in batch.requests) >= wait - 1e-9
