"""The monitor's scaling signals, with their size: which way they push a model in a region, and how far.

The monitor raises a signal per model, region and (for utilisation and queue depth) GPU type, each
with the relative change its rule suggests (`ScalingSignalRaised.factor`): +0.25 above 0.85
utilisation, -0.20 below 0.25, +0.5 for a queue above 50, p95 / 2,000 ms - 1 (0.25 to 4.0) for a
p95 above 2.5 s. The scaler sizes instances per model and region (it does not know which GPU type
each instance runs on), so the recent signals of a model and region are combined:

- any signal asking for more wins (as before: running short costs the SLO, running long only
  GPU-hours), and its size is the largest increase asked for;
- only when every recent signal asks for less is it a scale-down, by the smallest decrease asked
  for (the most cautious of them);
- a signal without a size (recorded before signals carried one) leaves the size unknown when no
  other signal of its direction has one: the policy's own factor applies then, as it always did.

A scale-up signal asks for ceil(current x (1 + change)) instances, at least one more; a scale-down
signal for floor(current x (1 - change)). The policy (domain/policy.py) takes these as one candidate
among its own, and its bounds (minimum, maximum, the no-flap floor), the planner's cooldown and the
refusal backoff (domain/backoff.py) apply to them like to any other target.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

MAX_CHANGE = 4.0  # the monitor never suggests more (+400%); a larger figure on the wire is capped
MAX_DECREASE = 0.9  # and never less than a tenth of the instances in one step


@dataclass(frozen=True)
class Pressure:
    """The combined push of a model's recent signals in one region: +1 more / -1 less, and the size."""

    direction: int
    change: float | None = None  # a positive fraction (0.25: +25% up, or -25% down); None: not known


def combine(signals: Iterable[tuple[bool, float | None]]) -> Pressure | None:
    """(wants more, suggested change) of each recent signal -> their pressure; None without signals."""
    ups: list[float] = []
    downs: list[float] = []
    more = less = False
    for wants_more, factor in signals:
        size = None if factor is None or not math.isfinite(factor) else abs(factor)
        if wants_more:
            more = True
            if size is not None and size > 0:
                ups.append(min(size, MAX_CHANGE))
        else:
            less = True
            if size is not None and size > 0:
                downs.append(min(size, MAX_DECREASE))
    if more:
        return Pressure(1, max(ups) if ups else None)
    if less:
        return Pressure(-1, min(downs) if downs else None)
    return None


def up_target(current: int, change: float) -> int:
    """Instances a scale-up signal of relative size `change` asks for: ceil(current x (1 + change)), at least +1."""
    return max(current + 1, math.ceil(round(current * (1.0 + change), 9)))


def down_target(current: int, change: float) -> int:
    """Instances a scale-down signal of relative size `change` asks for: floor(current x (1 - change)), >= 0."""
    return max(0, math.floor(round(current * (1.0 - change), 9)))
