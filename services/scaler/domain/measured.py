"""What an instance was measured to serve, and how it corrects the performance model's figure.

The performance model (domain/capacity.py) sizes an instance for the reference request (1,024
prompt / 128 output tokens) on the model's preferred GPU type. What the fleet's instances really
serve depends on the requests they really get, counted in the same requests the demand forecast
counts. The monitor reports, per server and model, the requests completed per second over its
window (`throughput_rps`) and the model's share of the server's busy time (`utilization`). Their
ratio is what that instance would serve busy all the time:

    sample = throughput_rps x 3600 / utilization   (requests per instance-hour)

Noise is kept out three ways:

1. **Which reports count.** Only a window with utilisation at or above `MIN_UTILIZATION` (0.5) and
   at least `MIN_REQUESTS` (20) completed requests. A lightly loaded instance batches little, so
   its busy time per request is larger than at load and the ratio would understate it; a window
   with a handful of requests is mostly chance.
2. **The estimate moves slowly.** An exponentially weighted mean per model and GPU type with
   `ALPHA` (0.2): each accepted sample first clipped to within `STEP` (2x) of the current estimate,
   so one wild window moves the estimate by at most 20% of that (a +20% / -10% step at most).
3. **The correction is bounded.** The capacity planned with is a geometric blend of the modelled
   and the measured figure, the measured one weighted by how many samples it rests on
   (`samples / FULL_WEIGHT`, full from 20 samples: about five minutes of one busy server's 15 s
   reports), and never outside [modelled / `BOUND`, modelled x `BOUND`] (2x). An estimate not
   updated for `MAX_AGE` (a day) is dropped: the fleet or the traffic has changed since.

Without measurements the modelled figure stands, unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

MIN_UTILIZATION = 0.5
MIN_REQUESTS = 20
ALPHA = 0.2
STEP = 2.0
FULL_WEIGHT = 20
BOUND = 2.0
MAX_AGE = timedelta(days=1)


@dataclass(frozen=True)
class Measured:
    """The smoothed measured capacity of one instance of a model on one GPU type."""

    requests_per_hour: float
    samples: int
    updated_at: datetime


def capacity_sample(throughput_rps: float, utilization: float, requests_ok: int) -> float | None:
    """One report's requests per instance-hour at full busy time; None when the report is too thin to say."""
    if utilization < MIN_UTILIZATION or requests_ok < MIN_REQUESTS or throughput_rps <= 0:
        return None
    if not (math.isfinite(throughput_rps) and math.isfinite(utilization)):
        return None
    return throughput_rps * 3600.0 / min(utilization, 1.0)


def update(previous: Measured | None, sample: float, at: datetime) -> Measured:
    """The estimate after one more sample: clipped to within STEP of it, then weighted by ALPHA."""
    if previous is None or previous.requests_per_hour <= 0:
        return Measured(sample, 1, at)
    estimate = previous.requests_per_hour
    clipped = min(max(sample, estimate / STEP), estimate * STEP)
    return Measured((1.0 - ALPHA) * estimate + ALPHA * clipped, previous.samples + 1, max(at, previous.updated_at))


def corrected(modelled: float, measured: Measured | None, now: datetime) -> float:
    """The capacity to plan with: the modelled figure blended with the measurements, within BOUND of it."""
    if measured is None or measured.requests_per_hour <= 0 or modelled <= 0 or now - measured.updated_at > MAX_AGE:
        return modelled
    weight = min(1.0, measured.samples / FULL_WEIGHT)
    blended = math.exp((1.0 - weight) * math.log(modelled) + weight * math.log(measured.requests_per_hour))
    return min(max(blended, modelled / BOUND), modelled * BOUND)
