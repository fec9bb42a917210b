"""The monitor on the simulated metrics: alert rules (`alerts.evaluate`) and scaling signals (`signals_for`).

Observations are per model and region, as the monitor's signal inputs are (servers of one model in
one region share one utilisation in the fluid model, so a per-server alert would fire for all of
them at once; it is counted once per model and region). Rules are evaluated only where the value
breaches or the alert is not OK: anywhere else `evaluate` leaves an OK alert OK and announces
nothing (a test proves the shortcut), which saves a call per rule, scope and minute.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from numpy.typing import NDArray

from services.monitor.domain.alerts import AlertStatus, Phase, evaluate
from services.monitor.domain.rules import DEFAULT_RULES, AlertRule, Direction, Metric
from services.monitor.domain.signals import DEFAULT_SIGNAL_RULES, SignalRule, due, signals_for
from shared.events import AlertState, SignalKind

Key = tuple[str, str]


def breaching(rule: AlertRule, values: NDArray[np.float64]) -> NDArray[np.bool_]:
    """`rules.breached` over an array (NaN: no value)."""
    with np.errstate(invalid="ignore"):
        return np.asarray(values >= rule.threshold if rule.direction is Direction.ABOVE else values <= rule.threshold)


def crossing(rule: SignalRule, values: NDArray[np.float64]) -> NDArray[np.bool_]:
    """The signal rule's strict crossing over an array (NaN: no value)."""
    with np.errstate(invalid="ignore"):
        return np.asarray(values > rule.threshold if rule.direction is Direction.ABOVE else values < rule.threshold)


@dataclass
class Monitor:
    """Alert states and the last raising of each signal, per rule and scope."""

    cooldown_s: float
    rules: Sequence[AlertRule] = DEFAULT_RULES
    signal_rules: Sequence[SignalRule] = DEFAULT_SIGNAL_RULES
    states: dict[tuple[str, Key], AlertStatus] = field(default_factory=dict)
    raised: dict[tuple[SignalKind, Key], datetime] = field(default_factory=dict)
    firings: Counter[str] = field(default_factory=Counter)

    def judge(self, metric: Metric, keys: Sequence[Key], values: NDArray[np.float64], now: datetime) -> None:
        """Advance every alert of `metric` for the scopes `keys` (NaN: no value this round)."""
        for rule in (r for r in self.rules if r.metric is metric and r.enabled):
            live = {i for i, key in enumerate(keys) if (rule.name, key) in self.states}
            for i in sorted(live | set(np.flatnonzero(breaching(rule, values)).tolist())):
                value = None if np.isnan(values[i]) else float(values[i])
                previous = self.states.get((rule.name, keys[i]), AlertStatus())
                status, change = evaluate(rule, value, now, previous)
                if status.phase is Phase.OK:
                    self.states.pop((rule.name, keys[i]), None)
                else:
                    self.states[(rule.name, keys[i])] = status
                if change is not None and change.state is AlertState.FIRING:
                    self.firings[rule.name] += 1

    def signals(
        self, metric: Metric, keys: Sequence[Key], values: NDArray[np.float64], now: datetime
    ) -> list[tuple[Key, SignalKind]]:
        """The signals raised for `metric` now (after each kind's cooldown per scope)."""
        candidates: set[int] = set()
        for rule in (r for r in self.signal_rules if r.metric is metric):
            candidates |= set(np.flatnonzero(crossing(rule, values)).tolist())
        raised = []
        for i in sorted(candidates):
            for signal in signals_for(metric, float(values[i]), tuple(self.signal_rules)):
                if due(self.raised.get((signal.kind, keys[i])), now, self.cooldown_s):
                    self.raised[(signal.kind, keys[i])] = now
                    raised.append((keys[i], signal.kind))
        return raised

    def firing(self) -> int:
        """Alerts firing now."""
        return sum(1 for s in self.states.values() if s.phase is Phase.FIRING)
