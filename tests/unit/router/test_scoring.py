"""Scoring: the seed weights rank worked examples as expected; distances are great-circle."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.router.domain.geo import haversine_km, normalised_distance, region_distance_km
from services.router.domain.scoring import WEIGHTS, Candidate, rank, score, success_rate
from shared.events import RoutingStrategy

NEAR_DEAR = Candidate("near-dear", "us-east-1", cost_per_hour=8.0, capacity=4)
FAR_CHEAP = Candidate("far-cheap", "eu-west-1", cost_per_hour=1.0, capacity=4)


def test_weights_sum_to_one():
    for w in WEIGHTS.values():
        assert math.isclose(w.distance + w.load + w.availability + w.history + w.cost, 1.0)


def test_distances_are_great_circle_and_normalised():
    assert region_distance_km("us-east-1", "eu-west-1") == pytest.approx(5_450, rel=0.03)
    assert region_distance_km("us-east-1", "ap-southeast-1") == pytest.approx(15_550, rel=0.03)
    assert normalised_distance("us-east-1", "us-east-1") == 0.0
    assert normalised_distance("us-east-1", "nowhere-1") == 0.5
    assert haversine_km((0, 0), (0, 180)) == pytest.approx(math.pi * 6371)


def test_latency_prefers_the_near_server_and_cost_the_cheap_one():
    # near: distance 1.0, cost 0.2; far: distance ~0.73, cost 0.9.
    assert [c.server_id for c in rank([FAR_CHEAP, NEAR_DEAR], "us-east-1", RoutingStrategy.LATENCY_OPTIMIZED)] == [
        "near-dear",
        "far-cheap",
    ]
    assert [c.server_id for c in rank([NEAR_DEAR, FAR_CHEAP], "us-east-1", RoutingStrategy.COST_OPTIMIZED)] == [
        "far-cheap",
        "near-dear",
    ]


def test_worked_example_scores():
    d = 1 - region_distance_km("us-east-1", "eu-west-1") / 20_000
    assert score(NEAR_DEAR, "us-east-1", RoutingStrategy.LATENCY_OPTIMIZED) == pytest.approx(0.4 + 0.3 + 0.2 + 0.1)
    assert score(FAR_CHEAP, "us-east-1", RoutingStrategy.COST_OPTIMIZED) == pytest.approx(0.5 * 0.9 + 0.3 + 0.2 * d)
    assert score(NEAR_DEAR, "us-east-1", RoutingStrategy.BALANCED) == pytest.approx(0.3 + 0.25 + 0.25 * 0.2 + 0.2)
    assert score(FAR_CHEAP, "us-east-1", RoutingStrategy.BALANCED) == pytest.approx(0.3 + 0.25 * d + 0.25 * 0.9 + 0.2)


def test_balanced_moves_away_from_a_loaded_server():
    busy = Candidate("busy", "us-east-1", 2.0, capacity=2, inflight=2)
    idle = Candidate("idle", "us-east-2", 2.0, capacity=2)
    assert rank([busy, idle], "us-east-1", RoutingStrategy.BALANCED)[0].server_id == "idle"
    assert rank([busy, idle], "us-east-1", RoutingStrategy.LATENCY_OPTIMIZED)[0].server_id == "idle"


def test_history_counts_for_latency_and_balanced():
    flaky = Candidate("flaky", "us-east-1", 2.0, 2, ok=5, failed=5)
    steady = Candidate("steady", "us-east-1", 2.0, 2, ok=10)
    assert success_rate(5, 5) == 0.5 and success_rate(0, 0) == 1.0
    for strategy in (RoutingStrategy.BALANCED, RoutingStrategy.LATENCY_OPTIMIZED):
        assert rank([flaky, steady], "us-east-1", strategy)[0].server_id == "steady"


candidates = st.builds(
    Candidate,
    server_id=st.text(min_size=1, max_size=5),
    region=st.sampled_from(["us-east-1", "eu-west-1", "ap-southeast-1", "elsewhere"]),
    cost_per_hour=st.floats(0, 50),
    capacity=st.integers(1, 8),
    inflight=st.integers(0, 10),
    ok=st.integers(0, 100),
    failed=st.integers(0, 100),
)


@given(st.lists(candidates, max_size=8), st.sampled_from(list(RoutingStrategy)))
def test_scores_are_bounded_and_the_ranking_is_a_sorted_permutation(cs, strategy):
    ranked = rank(cs, "us-east-1", strategy)
    assert sorted(map(id, ranked)) == sorted(map(id, cs))
    scores = [score(c, "us-east-1", strategy) for c in ranked]
    assert all(-1e-9 <= s <= 1 + 1e-9 for s in scores)
    assert scores == sorted(scores, reverse=True)
