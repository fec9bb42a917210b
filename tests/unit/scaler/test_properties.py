"""Invariants: no flapping under a constant load, never below the minimum, totals kept by compaction."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from services.scaler.domain.policy import POLICIES, CapacityInputs, PolicyName, decide
from services.scaler.domain.series import DemandSample, compact

policies = st.sampled_from(list(PolicyName))


@settings(max_examples=300, deadline=None)
@given(
    policies,
    st.floats(0.0, 40_000.0),
    st.floats(100.0, 5_000.0),
    st.integers(1, 40),
    st.floats(0.6, 1.0),
)
def test_constant_load_settles_without_reversing(name, load_rph, per_instance, start, confidence):
    policy, instances, history = POLICIES[name], start, [start]
    for _ in range(30):
        utilization = min(1.0, load_rph / (instances * per_instance))
        decision = decide(policy, CapacityInputs(instances, load_rph, confidence, utilization, per_instance,
                                                 max_instances=64))  # fmt: skip
        if decision is not None:
            instances = decision.target
        history.append(instances)
    steps = [b - a for a, b in itertools.pairwise(history) if b != a]
    assert all(step > 0 for step in steps) or all(step < 0 for step in steps), history  # one direction only
    assert history[-1] == history[-2], history  # and it has settled


@settings(max_examples=300, deadline=None)
@given(
    policies,
    st.integers(1, 64),
    st.floats(0.0, 100_000.0),
    st.one_of(st.none(), st.floats(0.0, 1.0)),
    st.floats(0.0, 1.0),
    st.integers(1, 3),
    st.integers(-1, 1),
)
def test_never_below_the_minimum(name, current, rph, utilization, confidence, minimum, pressure):
    inputs = CapacityInputs(current, rph, confidence, utilization, 1000.0, min_instances=minimum, pressure=pressure)
    decision = decide(POLICIES[name], inputs)
    if decision is not None:
        assert decision.target >= min(minimum, current)
        assert decision.target >= 1
        assert decision.target != current


samples = st.lists(
    st.builds(
        lambda minute, region, requests, tokens: DemandSample(
            "m",
            region,
            datetime(2026, 11, 1, tzinfo=UTC) + timedelta(minutes=minute),
            datetime(2026, 11, 1, tzinfo=UTC) + timedelta(minutes=minute, seconds=10),
            requests,
            tokens,
            tokens // 2,
        ),
        st.integers(0, 60 * 24 * 3),
        st.sampled_from(["us-east-1", "eu-west-1"]),
        st.integers(0, 1000),
        st.integers(0, 10_000),
    ),
    max_size=60,
)


@given(samples, st.integers(0, 60 * 24 * 3))
def test_compaction_keeps_totals_and_recent_windows(windows, cut_minute):
    before = datetime(2026, 11, 1, tzinfo=UTC) + timedelta(minutes=cut_minute)
    compacted = compact(windows, before)
    for region in ("us-east-1", "eu-west-1"):
        mine = [w for w in windows if w.region == region]
        theirs = [w for w in compacted if w.region == region]
        assert sum(w.requests for w in mine) == sum(w.requests for w in theirs)
        assert sum(w.tokens_in for w in mine) == sum(w.tokens_in for w in theirs)
    assert [w for w in compacted if w.window_start >= before] == [w for w in windows if w.window_start >= before]
    old = [w for w in compacted if w.window_start < before]
    assert len({(w.region, w.window_start) for w in old}) == len(old)  # one row per region and hour
    assert all(w.window_start.minute == 0 and w.window_end - w.window_start == timedelta(hours=1) for w in old)
    assert compact(compacted, before) == compacted  # compacting again changes nothing
