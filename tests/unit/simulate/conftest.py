"""A small scenario (6 models, 2 hours, 600 GPUs) shared by the simulator's tests: each run takes a second."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from llmfleet.simulate import SimOptions, Workload
from llmfleet.simulate.build import Prepared, prepare


def small_options(**changes: Any) -> SimOptions:
    """Two hours of 6 models at 3M requests a day on a 600-GPU fleet, warm-up of two days."""
    workload = Workload(requests_per_day=3e6, models=6, warmup_days=2, length_samples=32)
    base = SimOptions(workload=workload, duration_s=2 * 3600, fleet_gpus=600)
    return replace(base, **changes)


@pytest.fixture(scope="module")
def options() -> SimOptions:
    """The small scenario's options."""
    return small_options()


@pytest.fixture(scope="module")
def prepared(options: SimOptions) -> Prepared:
    """The small scenario, prepared once per module."""
    return prepare(options)
