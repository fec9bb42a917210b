"""Scaling-signal rules, cost per token and consumer lag."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.monitor.domain.cost import Price, ServerCost, cost_per_token, model_per_hour, server_per_hour
from services.monitor.domain.lag import group_lag
from services.monitor.domain.rules import Metric
from services.monitor.domain.signals import MAX_FACTOR, due, signals_for
from shared.events import SignalKind

T0 = datetime(2026, 11, 27, tzinfo=UTC)


def kinds(metric: Metric, value: float) -> list[tuple[SignalKind, float]]:
    return [(s.kind, round(s.factor, 6)) for s in signals_for(metric, value)]


def test_utilisation_signals_at_their_boundaries():
    assert kinds(Metric.GPU_UTILIZATION, 0.86) == [(SignalKind.SCALE_UP, 0.25)]
    assert kinds(Metric.GPU_UTILIZATION, 0.85) == []
    assert kinds(Metric.GPU_UTILIZATION, 0.5) == []
    assert kinds(Metric.GPU_UTILIZATION, 0.25) == []
    assert kinds(Metric.GPU_UTILIZATION, 0.24) == [(SignalKind.SCALE_DOWN, -0.2)]


def test_latency_signal_asks_for_enough_servers_to_reach_the_target():
    assert kinds(Metric.LATENCY_P95_MS, 2500) == []
    assert kinds(Metric.LATENCY_P95_MS, 4000) == [(SignalKind.ADD_SERVERS, 1.0)]
    assert kinds(Metric.LATENCY_P95_MS, 2501) == [(SignalKind.ADD_SERVERS, 0.2505)]
    assert kinds(Metric.LATENCY_P95_MS, 1e9) == [(SignalKind.ADD_SERVERS, MAX_FACTOR)]
    assert signals_for(Metric.LATENCY_P95_MS, 4000)[0].target == 2000


def test_queue_depth_signal_and_no_data():
    assert kinds(Metric.QUEUE_DEPTH, 50) == []
    assert kinds(Metric.QUEUE_DEPTH, 51) == [(SignalKind.ADD_INSTANCES, 0.5)]
    assert signals_for(Metric.QUEUE_DEPTH, None) == []
    assert signals_for(Metric.ERROR_RATE, 0.9) == []


def test_signals_wait_for_the_cooldown():
    assert due(None, T0, 60)
    assert not due(T0, T0 + timedelta(seconds=59), 60)
    assert due(T0, T0 + timedelta(seconds=60), 60)


@given(st.floats(0, 1))
def test_utilisation_never_asks_both_ways(value):
    assert len(signals_for(Metric.GPU_UTILIZATION, value)) <= 1


def test_price_list_wins_over_the_allocation_figure():
    server = ServerCost("us-east-1", "a100_80gb", gpu_count=2, pricing_class="spot", allocated_per_hour=9.0, models=2)
    assert server_per_hour(server, {}) == 9.0
    prices = {("us-east-1", "a100_80gb"): Price(on_demand=4.0, spot=1.5, reserved=2.5)}
    assert server_per_hour(server, prices) == 3.0
    assert model_per_hour([server, server], prices) == pytest.approx(3.0)  # half of each server


def test_cost_per_token():
    assert cost_per_token(3.6, 60, 1000) == pytest.approx(3.6 / 60 / 1000)
    assert cost_per_token(3.6, 60, 0) is None


def test_lag_counts_only_committed_partitions():
    assert group_lag({0: 5, 1: 10}, {0: 15, 1: 10, 2: 999}) == 10
    assert group_lag({0: 20}, {0: 15}) == 0  # a commit past a stale end offset is not negative lag
