"""The simulated scaler keeps each monitor signal's size, as the live repository does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from llmfleet.simulate.scaler import ForecastCache, Scaler
from services.scaler.domain.policy import PolicyName
from services.scaler.settings import ScalerSettings
from shared.events import SignalKind

NOW = datetime(2026, 12, 3, 12, tzinfo=UTC)
KEY = ("m", "us-east-1")


def scaler() -> Scaler:
    settings = ScalerSettings()
    return Scaler(settings, PolicyName.CONSERVATIVE, {"m": 1000.0}, ForecastCache(settings, {}))


def test_signals_carry_the_monitor_rules_size_and_combine_like_the_repository():
    s = scaler()
    s.signal(KEY, SignalKind.SCALE_DOWN, NOW)
    assert s.snapshot(NOW, {KEY: 4}, {}, {}).signal_sizes == {KEY: 0.2}
    s.signal(KEY, SignalKind.SCALE_UP, NOW)
    s.signal(KEY, SignalKind.ADD_INSTANCES, NOW)
    snapshot = s.snapshot(NOW, {KEY: 4}, {}, {})
    assert snapshot.pressures == {KEY: 1} and snapshot.signal_sizes == {KEY: 0.5}  # up wins, the largest
    later = NOW + timedelta(seconds=s.settings.signal_max_age_s + 1)
    assert s.snapshot(later, {KEY: 4}, {}, {}).signal_sizes == {}
