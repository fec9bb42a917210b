"""Signals carry their size: how the monitor's suggested changes combine and set the scaler's targets."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from services.scaler.domain.policy import POLICIES, CapacityInputs, PolicyName, decide
from services.scaler.domain.signals import Pressure, combine, down_target, up_target
from services.scaler.use_cases import recording
from shared.events import SCALING_ACTIONS, ActionKind, AllocationFailed, ScalingSignalRaised, SignalKind
from tests.unit.scaler.fakes import FakeScalerStore
from tests.unit.scaler.test_use_cases import CONSUMER, NOW, SETTINGS, evaluate, loaded, windows

CONSERVATIVE = POLICIES[PolicyName.CONSERVATIVE]
AGGRESSIVE = POLICIES[PolicyName.AGGRESSIVE]


def test_any_signal_asking_for_more_wins_with_the_largest_increase():
    assert combine([(True, 0.25), (False, -0.20), (True, 0.5)]) == Pressure(1, 0.5)


def test_only_decreases_give_the_most_cautious_one():
    assert combine([(False, -0.20), (False, -0.5)]) == Pressure(-1, 0.20)


def test_signals_without_a_size_leave_it_unknown_and_no_signal_is_no_pressure():
    assert combine([(True, None)]) == Pressure(1, None)
    assert combine([(True, None), (False, -0.2)]) == Pressure(1, None)  # the down size is not the up size
    assert combine([]) is None


def test_a_size_beyond_the_monitors_bounds_is_capped():
    assert combine([(True, 50.0)]) == Pressure(1, 4.0)
    assert combine([(False, -3.0)]) == Pressure(-1, 0.9)


@pytest.mark.parametrize(
    ("current", "change", "target"),
    [(4, 0.25, 5), (8, 0.25, 10), (1, 0.25, 2), (3, 0.5, 5), (2, 1.0, 4)],  # ceil(current x (1 + change)), >= +1
)
def test_up_target(current, change, target):
    assert up_target(current, change) == target


@pytest.mark.parametrize(("current", "change", "target"), [(10, 0.2, 8), (5, 0.2, 4), (4, 0.2, 3), (1, 0.2, 0)])
def test_down_target(current, change, target):
    assert down_target(current, change) == target


def hot(current: int, change: float | None, utilization: float | None = None, **kw) -> CapacityInputs:
    """A region at `current` instances that the monitor signalled up, its forecast quiet."""
    return CapacityInputs(current, 0.0, 0.95, utilization, 1000.0, pressure=1, signal_change=change, **kw)


def test_a_signal_alone_asks_for_its_own_size_not_the_policys_factor():
    decision = decide(CONSERVATIVE, hot(8, 0.25))
    assert decision is not None and (decision.target, decision.rule) == (10, "utilization_high")  # not x1.5 = 12


def test_a_signal_without_a_size_takes_the_policys_factor_as_before():
    decision = decide(CONSERVATIVE, hot(8, None))
    assert decision is not None and decision.target == 12


def test_measured_overload_and_a_larger_signal_take_the_larger():
    # Utilisation over conservative's 0.8 asks x1.5 (12); the p95 signal's +100% asks 16.
    decision = decide(CONSERVATIVE, hot(8, 1.0, utilization=0.9))
    assert decision is not None and decision.target == 16
    smaller = decide(CONSERVATIVE, hot(8, 0.25, utilization=0.9))
    assert smaller is not None and smaller.target == 12


def test_the_signal_stays_within_the_maximum():
    decision = decide(CONSERVATIVE, hot(8, 4.0, max_instances=20))
    assert decision is not None and decision.target == 20


def cold(current: int, change: float | None, utilization: float | None, minimum: int = 1) -> CapacityInputs:
    """A region the monitor signalled down, its confident forecast well under one instance."""
    return CapacityInputs(current, 100.0, 0.95, utilization, 1000.0, min_instances=minimum, pressure=-1,
                          signal_change=change)  # fmt: skip


def test_a_scale_down_signal_removes_its_own_share():
    # Utilisation 0.22: above conservative's 0.2 (the policy alone would keep 10), below the monitor's 0.25.
    decision = decide(CONSERVATIVE, cold(10, 0.2, 0.1))
    assert decision is not None and decision.target == 7  # measured cold too: the policy's x0.7 is the larger cut
    signalled = decide(CONSERVATIVE, cold(10, 0.2, None))
    assert signalled is not None and (signalled.target, signalled.rule) == (8, "utilization_low")  # floor(10 x 0.8)


def test_a_scale_down_signal_keeps_the_minimum_and_the_no_flap_floor():
    decision = decide(CONSERVATIVE, cold(2, 0.2, None, minimum=2))
    assert decision is None  # floor(2 x 0.8) = 1 is under the minimum: nothing to do
    # 0.24 x 5 instances on 4 would be 0.3 busy, under 0.8: 4 is allowed; not fewer than the minimum of 4.
    kept = decide(CONSERVATIVE, cold(5, 0.9, 0.24, minimum=4))
    assert kept is not None and kept.target == 4


async def signalled(store: FakeScalerStore, kind: SignalKind, factor: float, gpu_type: str | None = None) -> None:
    signal = ScalingSignalRaised(
        source="monitor", occurred_at=NOW - timedelta(seconds=30), kind=kind, model_id="m", region="us-east-1",
        gpu_type=gpu_type, metric="gpu_utilization", value=0.9, threshold=0.85, factor=factor,
    )  # fmt: skip
    assert await recording.record_signal(store, CONSUMER, signal)


async def placed(store: FakeScalerStore, instances: int, per_window: int = 5) -> None:
    """`instances` servers of m in us-east-1; `per_window` requests per 10 s bucket (1,800/h: under their capacity)."""
    if per_window:
        for window in windows("m", "us-east-1", per_window, 24):
            await recording.record_demand_window(store, CONSUMER, window)
    for i in range(instances):
        await recording.record_allocation(store, CONSUMER, loaded("m", "us-east-1", f"s{i}"), NOW, SETTINGS.backoff)


async def test_an_evaluation_scales_up_by_the_signals_size_and_records_it():
    store = FakeScalerStore()
    await placed(store, 8)  # 1,800/h on 8 x 1,000/h: the forecast asks for nothing, the signal decides
    await signalled(store, SignalKind.SCALE_UP, 0.25, "a100_80gb")
    await signalled(store, SignalKind.SCALE_DOWN, -0.20, "h100_80gb")  # another GPU type idles: up still wins
    result = await evaluate(store)
    [up] = [a for a in result.actions if a.region == "us-east-1"]
    assert (up.kind, up.current_instances, up.target_instances) == (ActionKind.SCALE_UP, 8, 10)  # not aggressive x2
    assert up.inputs["signal_change"] == 0.25 and "signal_change=0.25" in up.reason
    assert store.state.announced(SCALING_ACTIONS) == result.actions


async def test_an_old_signal_is_no_longer_pressure():
    store = FakeScalerStore()
    await placed(store, 8)
    await signalled(store, SignalKind.SCALE_UP, 0.25)
    later = NOW + timedelta(seconds=SETTINGS.signal_max_age_s)
    result = await evaluate(store, later)
    assert [a for a in result.actions if a.region == "us-east-1"] == []


async def test_a_signalled_scale_up_waits_out_the_refusal_backoff():
    store = FakeScalerStore()
    await placed(store, 4)
    await signalled(store, SignalKind.SCALE_UP, 0.5)
    first = await evaluate(store)
    [up] = [a for a in first.actions if a.region == "us-east-1"]
    assert up.target_instances == 6
    refused = AllocationFailed(source="allocator", model_id="m", region="us-east-1", reason="full",
                               action_id=up.action_id)  # fmt: skip
    assert await recording.record_allocation(store, CONSUMER, refused, NOW, SETTINGS.backoff)
    await signalled(store, SignalKind.SCALE_UP, 0.5)  # the monitor keeps asking
    held = await evaluate(store, NOW + timedelta(seconds=1))
    assert [a for a in held.actions if a.region == "us-east-1"] == []
    assert [(a.region, a.target) for a in held.held_back] == [("us-east-1", 6)]


async def test_a_signal_from_before_sizes_were_recorded_scales_by_the_policy():
    store = FakeScalerStore()
    await placed(store, 8)
    await signalled(store, SignalKind.SCALE_UP, 0.25)
    store.state.signals = [s.model_copy(update={"factor": None}) for s in store.state.signals]  # a NULL column
    result = await evaluate(store)
    [up] = [a for a in result.actions if a.region == "us-east-1"]
    assert up.target_instances == 16  # aggressive x2.0, as before
    assert "signal_change" not in up.inputs


def test_an_event_without_a_gpu_type_still_parses():
    raw = {
        "source": "monitor", "kind": "scale_up", "model_id": "m", "region": "eu", "metric": "gpu_utilization",
        "value": 0.9, "threshold": 0.85, "factor": 0.25, "event_id": str(uuid.uuid4()),
    }  # fmt: skip
    event = ScalingSignalRaised.model_validate(raw)
    assert (event.gpu_type, event.factor) == (None, 0.25)
